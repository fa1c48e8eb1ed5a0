package storage

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/kvflow/kvflow"
)

// A NUMBER is held exactly. Integers that fit are int64 and other numbers
// float64 when float64 reads back as the same decimal (0.1, 123.45, 1e300);
// anything else — integers beyond 64 bits, decimals with more digits than a
// float64 keeps — is a json.Number holding its canonical decimal text
// (12345678901234567890, 3.14159265358979323846264338327950288), which ION
// stores as an int or a decimal and encoding/json writes digit for digit.

// MaxNumberText caps the length of an exact number's text, so that a value
// such as 1e-1000000000 cannot cost memory or time.
const MaxNumberText = 1000

// isIntegerText reports whether a valid JSON number has no fraction or exponent.
func isIntegerText(s string) bool { return !strings.ContainsAny(s, ".eE") }

// decimalParts splits a valid JSON number into sign, coefficient digits
// without leading zeros ("0" for zero) and exponent: s = ±coef × 10^exp.
func decimalParts(s string) (neg bool, coef string, exp int, ok bool) {
	neg = strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 1<<20 || e < -(1<<20) {
			return false, "", 0, false
		}
		exp, s = e, s[:i]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		exp -= len(s) - i - 1
		s = s[:i] + s[i+1:]
	}
	coef = strings.TrimLeft(s, "0")
	if coef == "" {
		coef, exp = "0", 0
	}
	return neg, coef, exp, true
}

// trimZeros drops a coefficient's trailing zeros into its exponent.
func trimZeros(coef string, exp int) (string, int) {
	for len(coef) > 1 && coef[len(coef)-1] == '0' {
		coef, exp = coef[:len(coef)-1], exp+1
	}
	return coef, exp
}

// sameDecimal reports whether two valid JSON numbers are the same value.
func sameDecimal(a, b string) bool {
	na, ca, ea, oka := decimalParts(a)
	nb, cb, eb, okb := decimalParts(b)
	ca, ea = trimZeros(ca, ea)
	cb, eb = trimZeros(cb, eb)
	if ca == "0" && cb == "0" {
		return oka && okb
	}
	return oka && okb && na == nb && ca == cb && ea == eb
}

// formatDecimal writes ±coef × 10^exp in plain notation (no exponent),
// keeping the coefficient's scale (1.50 stays 1.50).
func formatDecimal(neg bool, coef string, exp int) (string, bool) {
	var s string
	switch {
	case exp >= 0:
		if len(coef)+exp > MaxNumberText {
			return "", false
		}
		s = coef + strings.Repeat("0", exp)
		if coef == "0" {
			s = "0"
		}
	case -exp < len(coef):
		s = coef[:len(coef)+exp] + "." + coef[len(coef)+exp:]
	default:
		if -exp+2 > MaxNumberText {
			return "", false
		}
		s = "0." + strings.Repeat("0", -exp-len(coef)) + coef
	}
	if neg {
		s = "-" + s
	}
	return s, len(s) <= MaxNumberText
}

// parseNumber reads a JSON number exactly: an int64 when it is an integer that
// fits, a float64 when float64 reads back as the same decimal, and otherwise a
// json.Number with its canonical text. -0 is kept as float64 -0.
func parseNumber(s string) (any, bool) {
	if !numberRe.MatchString(s) {
		return nil, false
	}
	if isIntegerText(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n == 0 && s[0] == '-' {
				return math.Copysign(0, -1), true // -0 is kept: it reads back as -0
			}
			return n, true
		}
		if len(s) > MaxNumberText {
			return nil, false
		}
		return json.Number(s), true
	}
	neg, coef, exp, ok := decimalParts(s)
	if !ok {
		return nil, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && sameDecimal(s, strconv.FormatFloat(f, 'e', -1, 64)) {
		return f, true
	}
	text, ok := formatDecimal(neg, coef, exp)
	if !ok {
		return nil, false
	}
	if isIntegerText(text) {
		return parseNumber(text)
	}
	return json.Number(text), true
}

// numberText is the decimal text of a NUMBER's Go value.
func numberText(x any) (string, bool) {
	switch n := x.(type) {
	case int64:
		return strconv.FormatInt(n, 10), true
	case float64:
		return strconv.FormatFloat(n, 'e', -1, 64), true
	case json.Number:
		return n.String(), true
	}
	return "", false
}

// bigDecimal is a NUMBER as an integer coefficient and a power of ten.
func bigDecimal(x any) (*big.Int, int, bool) {
	s, ok := numberText(x)
	if !ok {
		return nil, 0, false
	}
	neg, coef, exp, ok := decimalParts(s)
	if !ok {
		return nil, 0, false
	}
	c, ok := new(big.Int).SetString(coef, 10)
	if neg {
		c.Neg(c)
	}
	return c, exp, ok
}

// AddNumbers adds two NUMBERs exactly. When both are integers the sum must
// fit in 64 bits: a counter that would overflow is an error, never a wrap
// or a float. Decimals add exactly (0.1 + 0.2 is 0.3).
func AddNumbers(a, b Value) (Value, error) {
	x, xi := a.V.(int64)
	y, yi := b.V.(int64)
	if xi && yi {
		if sum := x + y; (sum > x) == (y > 0) {
			return Value{NUMBER, sum}, nil
		}
	}
	ca, ea, oka := bigDecimal(a.V)
	cb, eb, okb := bigDecimal(b.V)
	if !oka || !okb {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Only NUMBERs can be added, not %s and %s.", a.Type, b.Type)
	}
	integers := isInteger(a.V) && isInteger(b.V)
	for ea > eb {
		ca.Mul(ca, big.NewInt(10))
		ea--
	}
	for eb > ea {
		cb.Mul(cb, big.NewInt(10))
		eb--
	}
	sum := new(big.Int).Add(ca, cb)
	if integers && !sum.IsInt64() {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Adding %s to %s overflows: a counter holds integers from -9223372036854775808 to 9223372036854775807.", b.Text(), a.Text())
	}
	neg := sum.Sign() < 0
	text, ok := formatDecimal(neg, new(big.Int).Abs(sum).String(), ea)
	if !ok {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "The sum of %s and %s has more than %d characters.", a.Text(), b.Text(), MaxNumberText)
	}
	n, ok := parseNumber(text)
	if !ok {
		return Value{}, kvflow.Errorf(kvflow.EINTERNAL, "The sum of two NUMBERs could not be read back.")
	}
	return Value{NUMBER, n}, nil
}

// isInteger reports whether a NUMBER's Go value is written as an integer.
func isInteger(x any) bool {
	switch n := x.(type) {
	case int64:
		return true
	case json.Number:
		return isIntegerText(n.String())
	}
	return false
}

// IsBigNumber reports whether x is a number that int64 and float64 cannot hold exactly.
func IsBigNumber(x any) bool {
	_, ok := x.(json.Number)
	return ok
}
