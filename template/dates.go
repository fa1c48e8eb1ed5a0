package template

import (
	"github.com/kvflow/kvflow/storage"

	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timeZone='Europe/Paris' works on hosts without zoneinfo
)

// namedFormats are Kestra's named date formats.
var namedFormats = map[string]string{
	"iso":                 "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
	"iso8601":             "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
	"iso_sec":             "yyyy-MM-dd'T'HH:mm:ssXXX",
	"iso_milli":           "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
	"iso_micro":           "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
	"iso_date_time":       "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
	"iso_instant":         "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'",
	"iso_date":            "yyyy-MM-ddXXX",
	"iso_local_date":      "yyyy-MM-dd",
	"iso_local_time":      "HH:mm:ss",
	"iso_local_date_time": "yyyy-MM-dd'T'HH:mm:ss",
	"iso_time":            "HH:mm:ssXXX",
	"iso_offset_time":     "HH:mm:ssXXX",
	"iso_zoned_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX'['VV']'",
	"sql":                 "yyyy-MM-dd HH:mm:ss.SSS",
	"sql_seconds":         "yyyy-MM-dd HH:mm:ss",
	"sql_milli":           "yyyy-MM-dd HH:mm:ss.SSS",
	"sql_micro":           "yyyy-MM-dd HH:mm:ss.SSSSSS",
	"rfc_1123_date_time":  "EEE, d MMM yyyy HH:mm:ss 'GMT'",
}

// patternPart is a run of one pattern letter, or literal text.
type patternPart struct {
	letter byte // 0 for literal text
	n      int
	text   string
}

// parsePattern splits a Java DateTimeFormatter pattern such as
// yyyy-MM-dd'T'HH:mm:ss.SSSXXX into its parts.
func parsePattern(p string) ([]patternPart, error) {
	if f, ok := namedFormats[p]; ok {
		p = f
	}
	var parts []patternPart
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(p); j++ {
				if p[j] == '\'' {
					if j+1 < len(p) && p[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(p[j])
			}
			if j >= len(p) {
				return nil, fmt.Errorf("the date pattern %q has an unclosed quote", p)
			}
			if j == i+1 {
				b.WriteByte('\'') // '' is a quote
			}
			parts = append(parts, patternPart{text: b.String()})
			i = j + 1
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(p) && p[j] == c {
				j++
			}
			if !strings.ContainsRune("GyuMLdDEaHkKhmsSnXxZzVQ", rune(c)) {
				return nil, fmt.Errorf("the date pattern %q uses the unsupported letter '%c'", p, c)
			}
			parts = append(parts, patternPart{letter: c, n: j - i})
			i = j
		case c == '[' || c == ']' || c == '#' || c == '{' || c == '}':
			return nil, fmt.Errorf("the date pattern %q uses the reserved character '%c'; quote it", p, c)
		default:
			parts = append(parts, patternPart{text: string(c)})
			i++
		}
	}
	return parts, nil
}

func pad(n int64, width int) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	if neg {
		s = "-" + s
	}
	return s
}

// formatJava formats t with a Java pattern.
func formatJava(t time.Time, pattern string) (string, error) {
	parts, err := parsePattern(pattern)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	_, offset := t.Zone()
	for _, pp := range parts {
		n := pp.n
		switch pp.letter {
		case 0:
			b.WriteString(pp.text)
		case 'G':
			if t.Year() > 0 {
				b.WriteString("AD")
			} else {
				b.WriteString("BC")
			}
		case 'y', 'u':
			if n == 2 {
				b.WriteString(pad(int64(t.Year()%100), 2))
			} else {
				b.WriteString(pad(int64(t.Year()), n))
			}
		case 'M', 'L':
			switch {
			case n >= 5:
				b.WriteString(t.Month().String()[:1])
			case n == 4:
				b.WriteString(t.Month().String())
			case n == 3:
				b.WriteString(t.Month().String()[:3])
			default:
				b.WriteString(pad(int64(t.Month()), n))
			}
		case 'Q':
			b.WriteString(pad(int64((t.Month()-1)/3+1), n))
		case 'd':
			b.WriteString(pad(int64(t.Day()), n))
		case 'D':
			b.WriteString(pad(int64(t.YearDay()), n))
		case 'E':
			if n >= 4 {
				b.WriteString(t.Weekday().String())
			} else {
				b.WriteString(t.Weekday().String()[:3])
			}
		case 'a':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'H':
			b.WriteString(pad(int64(t.Hour()), n))
		case 'k':
			h := t.Hour()
			if h == 0 {
				h = 24
			}
			b.WriteString(pad(int64(h), n))
		case 'K':
			b.WriteString(pad(int64(t.Hour()%12), n))
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			b.WriteString(pad(int64(h), n))
		case 'm':
			b.WriteString(pad(int64(t.Minute()), n))
		case 's':
			b.WriteString(pad(int64(t.Second()), n))
		case 'S':
			frac := pad(int64(t.Nanosecond()), 9)
			for len(frac) < n {
				frac += "0"
			}
			b.WriteString(frac[:n])
		case 'n':
			b.WriteString(pad(int64(t.Nanosecond()), n))
		case 'X', 'x', 'Z':
			if offset == 0 && (pp.letter == 'X' || pp.letter == 'Z' && n == 5) {
				b.WriteString("Z")
				continue
			}
			sign := "+"
			o := offset
			if o < 0 {
				sign, o = "-", -o
			}
			hh, mm := pad(int64(o/3600), 2), pad(int64(o%3600/60), 2)
			switch {
			case pp.letter == 'Z' && n == 4:
				b.WriteString("GMT" + sign + hh + ":" + mm)
			case pp.letter == 'Z' && n <= 3:
				b.WriteString(sign + hh + mm)
			case n == 1 && mm == "00":
				b.WriteString(sign + hh)
			case n == 1, n == 2, n == 4:
				b.WriteString(sign + hh + mm)
			default:
				b.WriteString(sign + hh + ":" + mm)
			}
		case 'z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'V':
			b.WriteString(t.Location().String())
		}
	}
	return b.String(), nil
}

// goLayout turns a Java pattern into a Go layout, to parse with existingFormat.
func goLayout(pattern string) (string, error) {
	parts, err := parsePattern(pattern)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, pp := range parts {
		n := pp.n
		switch pp.letter {
		case 0:
			b.WriteString(pp.text)
		case 'y', 'u':
			if n == 2 {
				b.WriteString("06")
			} else {
				b.WriteString("2006")
			}
		case 'M', 'L':
			b.WriteString([]string{"1", "01", "Jan", "January"}[min(n, 4)-1])
		case 'd':
			b.WriteString([]string{"2", "02"}[min(n, 2)-1])
		case 'D':
			b.WriteString("002")
		case 'E':
			if n >= 4 {
				b.WriteString("Monday")
			} else {
				b.WriteString("Mon")
			}
		case 'a':
			b.WriteString("PM")
		case 'H', 'k':
			b.WriteString("15")
		case 'h', 'K':
			b.WriteString([]string{"3", "03"}[min(n, 2)-1])
		case 'm':
			b.WriteString([]string{"4", "04"}[min(n, 2)-1])
		case 's':
			b.WriteString([]string{"5", "05"}[min(n, 2)-1])
		case 'S':
			if i == 0 || parts[i-1].text != "." && parts[i-1].text != "," {
				return "", fmt.Errorf("the date pattern %q needs a '.' before its fraction of second to be parsed", pattern)
			}
			b.WriteString(strings.Repeat("0", n))
		case 'X':
			b.WriteString([]string{"Z07", "Z0700", "Z07:00"}[min(n, 3)-1])
		case 'x':
			b.WriteString([]string{"-07", "-0700", "-07:00"}[min(n, 3)-1])
		case 'Z':
			b.WriteString("-0700")
		case 'z':
			b.WriteString("MST")
		default:
			return "", fmt.Errorf("the date pattern %q cannot be used to parse ('%c')", pattern, pp.letter)
		}
	}
	return b.String(), nil
}

// toTime reads an instant: a time, ISO-8601 text (a date alone is its
// midnight), or epoch seconds. Times without an offset are in loc.
func toTime(v any, loc *time.Location) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, nil
			}
		}
		for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
			if t, err := time.ParseInLocation(layout, s, loc); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("its input (%s) is not an ISO-8601 date or instant", storage.Describe(x))
	}
	if i, ok := toInt(v); ok {
		return time.Unix(i, 0).In(loc), nil
	}
	return time.Time{}, fmt.Errorf("expected a date, not %s", kindOf(v))
}

// dateUnits are dateAdd's units (Java's ChronoUnit names).
var dateUnits = map[string]time.Duration{
	"NANOS": time.Nanosecond, "MICROS": time.Microsecond, "MILLIS": time.Millisecond, "SECONDS": time.Second,
	"MINUTES": time.Minute, "HOURS": time.Hour, "HALF_DAYS": 12 * time.Hour,
}

// addDate adds amount units to t as Java does: months and years keep the day
// when they can and otherwise end on the month's last day.
func addDate(t time.Time, amount int64, unit string) (time.Time, error) {
	if d, ok := dateUnits[unit]; ok {
		if amount > int64(1<<62)/int64(d) || amount < -int64(1<<62)/int64(d) {
			return time.Time{}, fmt.Errorf("%d %s is out of range", amount, unit)
		}
		return t.Add(time.Duration(amount) * d), nil
	}
	if amount > 1e6 || amount < -1e6 {
		return time.Time{}, fmt.Errorf("%d %s is out of range", amount, unit)
	}
	n := int(amount)
	switch unit {
	case "DAYS":
		return t.AddDate(0, 0, n), nil
	case "WEEKS":
		return t.AddDate(0, 0, 7*n), nil
	case "MONTHS":
		return addMonths(t, n), nil
	case "YEARS":
		return addMonths(t, 12*n), nil
	case "DECADES":
		return addMonths(t, 120*n), nil
	case "CENTURIES":
		return addMonths(t, 1200*n), nil
	}
	return time.Time{}, fmt.Errorf("unknown unit %q; expected NANOS, MICROS, MILLIS, SECONDS, MINUTES, HOURS, HALF_DAYS, DAYS, WEEKS, MONTHS, YEARS, DECADES or CENTURIES", unit)
}

func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location()).AddDate(0, n, 0)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}
