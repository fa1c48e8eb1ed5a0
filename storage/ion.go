package storage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/amazon-ion/ion-go/ion"
)

// EncodeION writes v as one ION text value. STRING values go through a
// streaming escaper; the other types through ion-go's text writer.
func EncodeION(w io.Writer, v Value) error {
	if s, ok := v.V.(string); ok && v.Type == STRING {
		if buf, ok := w.(*bytes.Buffer); ok { // whole values: no extra buffering
			buf.Grow(len(s) + 2)
			sw := &ionStringWriter{w: buf}
			io.WriteString(sw, s)
			return sw.Close()
		}
		sw := newIONStringWriter(w)
		if _, err := io.WriteString(sw, s); err != nil {
			return err
		}
		return sw.Close()
	}
	iw := ion.NewTextWriter(w)
	if err := writeION(iw, v.V); err != nil {
		return err
	}
	return iw.Finish()
}

func writeION(w ion.Writer, x any) error {
	switch v := x.(type) {
	case nil:
		return w.WriteNull()
	case string:
		return w.WriteString(v)
	case bool:
		return w.WriteBool(v)
	case int64:
		return w.WriteInt(v)
	case int:
		return w.WriteInt(int64(v))
	case json.Number:
		if isIntegerText(v.String()) {
			n, ok := new(big.Int).SetString(v.String(), 10)
			if !ok {
				return fmt.Errorf("%d-character number is not an integer", len(v))
			}
			return w.WriteBigInt(n)
		}
		d, err := ion.ParseDecimal(strings.NewReplacer("e", "d", "E", "d").Replace(v.String()))
		if err != nil {
			return err
		}
		return w.WriteDecimal(d)
	case float64:
		// A decimal keeps 123.45 readable where an ION float would print 1.2345e+2.
		d, err := ion.ParseDecimal(strings.Replace(strconv.FormatFloat(v, 'g', -1, 64), "e", "d", 1))
		if err != nil {
			return err
		}
		return w.WriteDecimal(d)
	case time.Time:
		return w.WriteTimestamp(ion.NewTimestampWithFractionalSeconds(v.UTC(), ion.TimestampPrecisionNanosecond, ion.TimezoneUTC, fractionDigits(v)))
	case Date:
		return w.WriteTimestamp(ion.NewDateTimestamp(v.Time, ion.TimestampPrecisionDay))
	case Duration:
		return w.WriteString(v.Text)
	case map[string]any:
		if err := w.BeginStruct(); err != nil {
			return err
		}
		for _, k := range sortedKeys(v) {
			if err := w.FieldName(ion.NewSymbolTokenFromString(k)); err != nil {
				return err
			}
			if err := writeION(w, v[k]); err != nil {
				return err
			}
		}
		return w.EndStruct()
	case []any:
		if err := w.BeginList(); err != nil {
			return err
		}
		for _, e := range v {
			if err := writeION(w, e); err != nil {
				return err
			}
		}
		return w.EndList()
	}
	return fmt.Errorf("cannot encode Go type %T as ION", x)
}

func fractionDigits(t time.Time) uint8 {
	ns := t.Nanosecond()
	if ns == 0 {
		return 0
	}
	d := uint8(9)
	for ns%10 == 0 {
		ns /= 10
		d--
	}
	return d
}

// DecodeION reads one ION value that was stored as type t.
func DecodeION(data []byte, t Type) (Value, error) {
	if t == STRING {
		if n := len(data); n >= 2 && data[0] == '"' && data[n-1] == '"' {
			if body := data[1 : n-1]; bytes.IndexByte(body, '\\') < 0 && bytes.IndexByte(body, '"') < 0 {
				return String(string(body)), nil // nothing escaped
			}
		}
		b, err := io.ReadAll(NewIONStringReader(bytes.NewReader(data)))
		if err != nil {
			return Value{}, err
		}
		return String(string(b)), nil
	}
	r := ion.NewReaderBytes(data)
	if !r.Next() {
		if err := r.Err(); err != nil {
			return Value{}, err
		}
		return Value{}, errors.New("no ION value")
	}
	x, err := readION(r)
	if err != nil {
		return Value{}, err
	}
	if r.Next() {
		return Value{}, errors.New("more than one ION value")
	}
	if err := r.Err(); err != nil {
		return Value{}, err
	}
	switch t {
	case DURATION:
		if s, ok := x.(string); ok {
			d, err := ParseDuration(s)
			return Value{DURATION, d}, err
		}
	case DATE:
		if tm, ok := x.(time.Time); ok {
			return Value{DATE, Date{tm}}, nil
		}
	case NUMBER:
		switch x.(type) {
		case int64, float64, json.Number:
			return Value{NUMBER, x}, nil
		}
	case BOOLEAN:
		if _, ok := x.(bool); ok {
			return Value{BOOLEAN, x}, nil
		}
	case DATETIME:
		if _, ok := x.(time.Time); ok {
			return Value{DATETIME, x}, nil
		}
	case JSON:
		switch x.(type) {
		case map[string]any, []any:
			return Value{JSON, x}, nil
		}
	}
	return Value{}, fmt.Errorf("ION value of Go type %T is not a %s", x, t)
}

func readION(r ion.Reader) (any, error) {
	if r.IsNull() {
		return nil, nil
	}
	switch r.Type() {
	case ion.BoolType:
		b, err := r.BoolValue()
		return deref(b, err)
	case ion.IntType:
		n, err := r.BigIntValue()
		if err != nil {
			return nil, err
		}
		if n.IsInt64() {
			return n.Int64(), nil
		}
		if x, ok := parseNumber(n.String()); ok {
			return x, nil
		}
		return nil, fmt.Errorf("ION int of %d digits is out of range", len(n.String()))
	case ion.FloatType:
		f, err := r.FloatValue()
		return deref(f, err)
	case ion.DecimalType:
		d, err := r.DecimalValue()
		if err != nil {
			return nil, err
		}
		n, exp := d.CoEx()
		if n.Sign() == 0 && strings.HasPrefix(d.String(), "-") {
			return math.Copysign(0, -1), nil // -0 is kept, as written
		}
		if x, ok := parseNumber(fmt.Sprintf("%se%d", n.String(), exp)); ok {
			return x, nil
		}
		return nil, fmt.Errorf("ION decimal of %d digits is out of range", len(n.String()))
	case ion.TimestampType:
		ts, err := r.TimestampValue()
		if err != nil {
			return nil, err
		}
		return ts.GetDateTime().UTC(), nil
	case ion.StringType, ion.SymbolType:
		s, err := r.StringValue()
		return deref(s, err)
	case ion.StructType:
		m := map[string]any{}
		if err := r.StepIn(); err != nil {
			return nil, err
		}
		for r.Next() {
			name, err := r.FieldName()
			if err != nil {
				return nil, err
			}
			if name == nil || name.Text == nil {
				return nil, errors.New("ION struct field without a name")
			}
			if m[*name.Text], err = readION(r); err != nil {
				return nil, err
			}
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
		return m, r.StepOut()
	case ion.ListType, ion.SexpType:
		l := []any{}
		if err := r.StepIn(); err != nil {
			return nil, err
		}
		for r.Next() {
			e, err := readION(r)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
		return l, r.StepOut()
	}
	return nil, fmt.Errorf("unsupported ION type %v", r.Type())
}

func deref[T any](p *T, err error) (any, error) {
	if err != nil || p == nil {
		return nil, err
	}
	return *p, nil
}

// ionStringWriter writes the bytes given to it as the body of one ION text
// string, escaped as ion-go escapes them, so a value of any size streams.
type ionStringWriter struct {
	w interface {
		io.Writer
		io.ByteWriter
		io.StringWriter
	}
	started bool
	err     error
}

func newIONStringWriter(w io.Writer) *ionStringWriter {
	return &ionStringWriter{w: bufio.NewWriterSize(w, 32<<10)}
}

const hexDigits = "0123456789abcdef"

func (s *ionStringWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if !s.started {
		s.started = true
		s.err = s.w.WriteByte('"')
	}
	start := 0
	for i := 0; i < len(p) && s.err == nil; i++ {
		c := p[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		s.w.Write(p[start:i])
		start = i + 1
		switch c {
		case '"', '\\':
			s.w.Write([]byte{'\\', c})
		case '\n':
			s.w.WriteString(`\n`)
		case '\t':
			s.w.WriteString(`\t`)
		case '\r':
			s.w.WriteString(`\r`)
		default:
			s.w.Write([]byte{'\\', 'x', hexDigits[c>>4], hexDigits[c&0xF]})
		}
	}
	if s.err == nil {
		_, s.err = s.w.Write(p[start:])
	}
	if s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}

// Close ends the string and flushes. It writes nothing else to the underlying writer.
func (s *ionStringWriter) Close() error {
	if s.err != nil {
		return s.err
	}
	if !s.started {
		s.w.WriteByte('"')
	}
	s.w.WriteByte('"')
	if f, ok := s.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// NewIONStringReader reads one ION text short string ("...") from r and
// yields its unescaped bytes, without holding the whole value in memory.
func NewIONStringReader(r io.Reader) io.Reader {
	return &ionStringReader{r: bufio.NewReaderSize(r, 32<<10)}
}

type ionStringReader struct {
	r     *bufio.Reader
	state int // 0 before the opening quote, 1 inside, 2 done
	pend  []byte
	err   error
}

var errBadIONString = errors.New("stored value is not an ION string")

func (s *ionStringReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.pend) > 0 {
			c := copy(p[n:], s.pend)
			s.pend = s.pend[c:]
			n += c
			continue
		}
		if s.err != nil {
			break
		}
		s.err = s.step()
	}
	if n > 0 {
		return n, nil
	}
	return 0, s.err
}

// step reads one token (a run of plain bytes or one escape) into pend.
func (s *ionStringReader) step() error {
	switch s.state {
	case 0:
		for {
			c, err := s.r.ReadByte()
			if err != nil {
				return errBadIONString
			}
			if c == '"' {
				s.state = 1
				return nil
			}
			if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
				return errBadIONString
			}
		}
	case 2:
		for {
			c, err := s.r.ReadByte()
			if err == io.EOF {
				return io.EOF
			} else if err != nil {
				return err
			}
			if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
				return errBadIONString
			}
		}
	}
	buf, err := s.r.Peek(1)
	if err != nil {
		return errBadIONString
	}
	switch buf[0] {
	case '"':
		s.r.ReadByte()
		s.state = 2
		return nil
	case '\\':
		s.r.ReadByte()
		return s.escape()
	}
	// A run of plain bytes up to the next quote or backslash.
	n := s.r.Buffered()
	if n == 0 {
		n = 1
	}
	chunk, _ := s.r.Peek(n)
	i := bytes.IndexAny(chunk, "\"\\")
	if i < 0 {
		i = len(chunk)
	}
	s.pend = append(s.pend[:0], chunk[:i]...)
	s.r.Discard(i)
	return nil
}

func (s *ionStringReader) escape() error {
	c, err := s.r.ReadByte()
	if err != nil {
		return errBadIONString
	}
	simple := map[byte]byte{'0': 0, 'a': '\a', 'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', 'v': '\v', '"': '"', '\'': '\'', '?': '?', '\\': '\\', '/': '/'}
	if b, ok := simple[c]; ok {
		s.pend = append(s.pend[:0], b)
		return nil
	}
	digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	switch {
	case c == '\n': // a line continuation
		s.pend = s.pend[:0]
		return nil
	case digits == 0:
		return errBadIONString
	}
	hex := make([]byte, digits)
	if _, err := io.ReadFull(s.r, hex); err != nil {
		return errBadIONString
	}
	code, err := strconv.ParseUint(string(hex), 16, 32)
	if err != nil {
		return errBadIONString
	}
	s.pend = utf8.AppendRune(s.pend[:0], rune(code)) // \xHH is a code point, as \u is
	return nil
}
