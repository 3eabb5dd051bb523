package credentials

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// This file is the part of RFC 8941 (Structured Field Values for HTTP)
// that RFC 9421 (Signature-Input, Signature) and RFC 9530
// (Content-Digest) need: Dictionaries whose members are Items or Inner
// Lists, Parameters, and the bare items Integer, Decimal, String, Token,
// Byte Sequence and Boolean. Parsing follows the algorithms of RFC 8941
// §4.2 step by step; serialization follows §4.1 and is what
// "@signature-params" is built from. Lists and top-level Items are not
// needed and not implemented, nor are RFC 9651's Date and Display String.
//
// The parser allocates only for what it returns: keys, tokens and
// strings without escapes are substrings of the input.

// sfType is the type of a bare item.
type sfType uint8

const (
	sfInteger sfType = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBoolean
)

func (t sfType) String() string {
	switch t {
	case sfInteger:
		return "integer"
	case sfDecimal:
		return "decimal"
	case sfString:
		return "string"
	case sfToken:
		return "token"
	case sfBytes:
		return "byte sequence"
	case sfBoolean:
		return "boolean"
	}
	return "invalid"
}

// sfBareItem is an RFC 8941 bare item. An Integer is num; a Decimal is
// num thousandths (RFC 8941 decimals have at most three fractional
// digits, so this is exact); a String or Token is str; a Byte Sequence is
// bin; a Boolean is flag.
type sfBareItem struct {
	typ  sfType
	num  int64
	str  string
	bin  []byte
	flag bool
}

// sfTrue is the Boolean true, the value of a parameter or dictionary
// member written without "=".
var sfTrue = sfBareItem{typ: sfBoolean, flag: true}

// sfParam is one parameter; parameters keep their order.
type sfParam struct {
	key string
	val sfBareItem
}

// sfItem is an Item: a bare item and its parameters.
type sfItem struct {
	bare   sfBareItem
	params []sfParam
}

// sfMember is a Dictionary member: an Item, or (inner) an Inner List
// with its parameters. start and end delimit the member value ("=..."
// excluded) in the parsed input.
type sfMember struct {
	key        string
	inner      bool
	item       sfItem    // when !inner
	list       []sfItem  // when inner
	params     []sfParam // of the inner list
	start, end int
}

// sfOptions tightens the parser for security-sensitive fields. The zero
// value parses RFC 8941 as written, without limits.
type sfOptions struct {
	// noDupKeys refuses a Dictionary key given twice (RFC 8941: the last
	// one wins, in the position of the first).
	noDupKeys bool
	// noDupParams refuses a parameter key given twice in one list of
	// parameters (RFC 8941: the last one wins).
	noDupParams bool
	// strictBytes refuses Byte Sequences whose base64 is not canonical:
	// missing "=" padding or non-zero pad bits (RFC 8941 asks parsers to
	// accept both).
	strictBytes bool
	// maxMembers, maxItems and maxParams bound Dictionary members, Inner
	// List items and parameters per list (0: no bound).
	maxMembers, maxItems, maxParams int
}

// sfError is a syntax error at a byte offset of the field value. It
// never quotes the value.
type sfError struct {
	off int
	msg string
}

func (e *sfError) Error() string {
	return "structured field: " + e.msg + " at offset " + strconv.Itoa(e.off)
}

// sfParser is the state of one parse: the input, the position, and the
// backing arrays that the items and parameters of all inner lists and
// members share (one allocation each for a typical field rather than
// one per list). The slices handed out are capped, so an append by a
// caller cannot overwrite a neighbour; a backing array that grows leaves
// the slices already handed out in the old one, intact.
type sfParser struct {
	s      string
	i      int
	o      sfOptions
	items  []sfItem
	params []sfParam
}

var (
	sfB64Strict = base64.StdEncoding.Strict()
	sfB64Raw    = base64.RawStdEncoding
)

// sfTchar is the tchar set of RFC 9110 §5.6.2.
var sfTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func sfIsDigit(c byte) bool { return c >= '0' && c <= '9' }
func sfIsAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func sfIsLower(c byte) bool { return c >= 'a' && c <= 'z' }

func (p *sfParser) errorf(format string, args ...any) error {
	return &sfError{off: p.i, msg: fmt.Sprintf(format, args...)}
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// sfParseDictionary parses a Dictionary field value (RFC 8941 §4.2 with
// field type "dictionary"). Several field lines must be joined with ","
// first. An empty value is an empty Dictionary.
func sfParseDictionary(s string, o sfOptions) ([]sfMember, error) {
	p := sfParser{s: s, o: o}
	p.skipSP()
	if p.i == len(p.s) {
		return nil, nil
	}
	ms, err := p.dictionary()
	if err != nil {
		return nil, err
	}
	p.skipSP()
	if p.i != len(p.s) {
		return nil, p.errorf("unexpected character")
	}
	return ms, nil
}

// dictionary is RFC 8941 §4.2.2.
func (p *sfParser) dictionary() ([]sfMember, error) {
	var ms []sfMember
	for p.i < len(p.s) {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		m := sfMember{key: key}
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			m.start = p.i
			if p.i < len(p.s) && p.s[p.i] == '(' {
				m.inner = true
				m.list, m.params, err = p.innerList()
			} else {
				m.item, err = p.item()
			}
		} else {
			m.start = p.i
			m.item.bare = sfTrue
			m.item.params, err = p.parameters()
		}
		if err != nil {
			return nil, err
		}
		m.end = p.i
		if j := sfMemberIndex(ms, key); j >= 0 {
			if p.o.noDupKeys {
				return nil, &sfError{off: m.start, msg: "duplicate key"}
			}
			m.key = ms[j].key
			ms[j] = m
		} else {
			if p.o.maxMembers > 0 && len(ms) == p.o.maxMembers {
				return nil, p.errorf("more than %d members", p.o.maxMembers)
			}
			ms = append(ms, m)
		}
		p.skipOWS()
		if p.i == len(p.s) {
			return ms, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errorf("expected \",\"")
		}
		p.i++
		p.skipOWS()
		if p.i == len(p.s) {
			return nil, p.errorf("trailing comma")
		}
	}
	return ms, nil
}

func sfMemberIndex(ms []sfMember, key string) int {
	for j := range ms {
		if ms[j].key == key {
			return j
		}
	}
	return -1
}

// innerList is RFC 8941 §4.2.1.2; the input is at "(".
func (p *sfParser) innerList() ([]sfItem, []sfParam, error) {
	p.i++
	if p.items == nil {
		p.items = make([]sfItem, 0, 8)
	}
	start := len(p.items)
	for p.i < len(p.s) {
		p.skipSP()
		if p.i == len(p.s) {
			break
		}
		if p.s[p.i] == ')' {
			p.i++
			items := p.items[start:len(p.items):len(p.items)]
			if len(items) == 0 {
				items = nil
			}
			ps, err := p.parameters()
			return items, ps, err
		}
		it, err := p.item()
		if err != nil {
			return nil, nil, err
		}
		if p.o.maxItems > 0 && len(p.items)-start == p.o.maxItems {
			return nil, nil, p.errorf("more than %d items in an inner list", p.o.maxItems)
		}
		p.items = append(p.items, it)
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != ')' {
			return nil, nil, p.errorf("expected \" \" or \")\" in an inner list")
		}
	}
	return nil, nil, p.errorf("inner list without \")\"")
}

// item is RFC 8941 §4.2.3.
func (p *sfParser) item() (sfItem, error) {
	bare, err := p.bareItem()
	if err != nil {
		return sfItem{}, err
	}
	ps, err := p.parameters()
	return sfItem{bare: bare, params: ps}, err
}

// parameters is RFC 8941 §4.2.3.2.
func (p *sfParser) parameters() ([]sfParam, error) {
	if p.i == len(p.s) || p.s[p.i] != ';' {
		return nil, nil
	}
	if p.params == nil {
		p.params = make([]sfParam, 0, 8)
	}
	start := len(p.params)
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		at := p.i
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		val := sfTrue
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if val, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		if j := sfParamIndex(p.params[start:], key); j >= 0 {
			if p.o.noDupParams {
				return nil, &sfError{off: at, msg: "duplicate parameter"}
			}
			p.params[start+j].val = val
			continue
		}
		if p.o.maxParams > 0 && len(p.params)-start == p.o.maxParams {
			return nil, &sfError{off: at, msg: fmt.Sprintf("more than %d parameters", p.o.maxParams)}
		}
		p.params = append(p.params, sfParam{key: key, val: val})
	}
	return p.params[start:len(p.params):len(p.params)], nil
}

func sfParamIndex(ps []sfParam, key string) int {
	for j := range ps {
		if ps[j].key == key {
			return j
		}
	}
	return -1
}

// key is RFC 8941 §4.2.3.3.
func (p *sfParser) key() (string, error) {
	start := p.i
	if p.i == len(p.s) || !(sfIsLower(p.s[p.i]) || p.s[p.i] == '*') {
		return "", p.errorf("expected a key")
	}
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(sfIsLower(c) || sfIsDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

// bareItem is RFC 8941 §4.2.3.1.
func (p *sfParser) bareItem() (sfBareItem, error) {
	if p.i == len(p.s) {
		return sfBareItem{}, p.errorf("expected an item")
	}
	switch c := p.s[p.i]; {
	case c == '-' || sfIsDigit(c):
		return p.number()
	case c == '"':
		return p.string()
	case c == '*' || sfIsAlpha(c):
		return p.token()
	case c == ':':
		return p.byteSequence()
	case c == '?':
		return p.boolean()
	}
	return sfBareItem{}, p.errorf("unexpected character")
}

// number is RFC 8941 §4.2.4.
func (p *sfParser) number() (sfBareItem, error) {
	neg := false
	if p.s[p.i] == '-' {
		neg = true
		p.i++
	}
	if p.i == len(p.s) || !sfIsDigit(p.s[p.i]) {
		return sfBareItem{}, p.errorf("expected a digit")
	}
	var whole, frac int64
	digits, fracDigits, decimal := 0, 0, false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case sfIsDigit(c) && !decimal:
			if digits == 15 {
				return sfBareItem{}, p.errorf("integer with more than 15 digits")
			}
			whole = whole*10 + int64(c-'0')
			digits++
		case sfIsDigit(c):
			if fracDigits == 3 {
				return sfBareItem{}, p.errorf("decimal with more than 3 fractional digits")
			}
			frac = frac*10 + int64(c-'0')
			fracDigits++
		case c == '.' && !decimal:
			if digits > 12 {
				return sfBareItem{}, p.errorf("decimal with more than 12 integer digits")
			}
			decimal = true
		default:
			goto done
		}
		p.i++
	}
done:
	if !decimal {
		if neg {
			whole = -whole
		}
		return sfBareItem{typ: sfInteger, num: whole}, nil
	}
	if fracDigits == 0 {
		return sfBareItem{typ: sfDecimal}, p.errorf("decimal ends with \".\"")
	}
	for n := fracDigits; n < 3; n++ {
		frac *= 10
	}
	v := whole*1000 + frac
	if neg {
		v = -v
	}
	return sfBareItem{typ: sfDecimal, num: v}, nil
}

// string is RFC 8941 §4.2.5; the input is at the opening quote.
func (p *sfParser) string() (sfBareItem, error) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return sfBareItem{typ: sfString, str: s}, nil
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20 || c > 0x7e:
			return sfBareItem{}, p.errorf("invalid character in a string")
		}
		p.i++
	}
	return sfBareItem{}, p.errorf("string without closing quote")
}

// escapedString continues string from the first backslash.
func (p *sfParser) escapedString(start int) (sfBareItem, error) {
	buf := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.i == len(p.s) {
				return sfBareItem{}, p.errorf("string without closing quote")
			}
			if c = p.s[p.i]; c != '"' && c != '\\' {
				return sfBareItem{}, p.errorf("invalid escape in a string")
			}
			p.i++
			buf = append(buf, c)
		case c == '"':
			return sfBareItem{typ: sfString, str: string(buf)}, nil
		case c < 0x20 || c > 0x7e:
			p.i--
			return sfBareItem{}, p.errorf("invalid character in a string")
		default:
			buf = append(buf, c)
		}
	}
	return sfBareItem{}, p.errorf("string without closing quote")
}

// token is RFC 8941 §4.2.6.
func (p *sfParser) token() (sfBareItem, error) {
	start := p.i
	p.i++
	for p.i < len(p.s) && (sfTchar[p.s[p.i]] || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return sfBareItem{typ: sfToken, str: p.s[start:p.i]}, nil
}

// byteSequence is RFC 8941 §4.2.7; the input is at the opening colon.
func (p *sfParser) byteSequence() (sfBareItem, error) {
	p.i++
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ':' {
		if c := p.s[p.i]; !(sfIsAlpha(c) || sfIsDigit(c) || c == '+' || c == '/' || c == '=') {
			return sfBareItem{}, p.errorf("invalid character in a byte sequence")
		}
		p.i++
	}
	if p.i == len(p.s) {
		return sfBareItem{}, p.errorf("byte sequence without closing colon")
	}
	enc := p.s[start:p.i]
	p.i++
	var (
		b   []byte
		err error
	)
	if p.o.strictBytes {
		b, err = sfB64Strict.DecodeString(enc)
	} else {
		// Synthesize the padding and ignore non-zero pad bits, as
		// RFC 8941 asks: strip "=" and decode unpadded.
		n := len(enc)
		for n > 0 && enc[n-1] == '=' {
			n--
		}
		if len(enc)-n > 2 {
			err = base64.CorruptInputError(n)
		} else {
			b, err = sfB64Raw.DecodeString(enc[:n])
		}
	}
	if err != nil {
		return sfBareItem{}, &sfError{off: start, msg: "invalid base64 in a byte sequence"}
	}
	if b == nil {
		b = []byte{}
	}
	return sfBareItem{typ: sfBytes, bin: b}, nil
}

// boolean is RFC 8941 §4.2.8.
func (p *sfParser) boolean() (sfBareItem, error) {
	p.i++
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case '1':
			p.i++
			return sfBareItem{typ: sfBoolean, flag: true}, nil
		case '0':
			p.i++
			return sfBareItem{typ: sfBoolean}, nil
		}
	}
	return sfBareItem{}, p.errorf("expected \"?0\" or \"?1\"")
}

// Serialization (RFC 8941 §4.1). The values come from the parser or
// from code that checked them (sfValidString), so these cannot fail.

// sfAppendDictionary appends the serialization of a Dictionary.
func sfAppendDictionary(b []byte, ms []sfMember) []byte {
	for i := range ms {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = sfAppendMember(b, &ms[i])
	}
	return b
}

// sfAppendMember appends one Dictionary member: key, then "=" and the
// value unless it is the Boolean true (then only its parameters).
func sfAppendMember(b []byte, m *sfMember) []byte {
	b = append(b, m.key...)
	if m.inner {
		b = append(b, '=')
		return sfAppendInnerList(b, m.list, m.params)
	}
	if m.item.bare.typ == sfBoolean && m.item.bare.flag {
		return sfAppendParams(b, m.item.params)
	}
	b = append(b, '=')
	return sfAppendItem(b, m.item)
}

// sfAppendInnerList appends "(" items separated by SP ")" and params.
func sfAppendInnerList(b []byte, items []sfItem, ps []sfParam) []byte {
	b = append(b, '(')
	for i := range items {
		if i > 0 {
			b = append(b, ' ')
		}
		b = sfAppendItem(b, items[i])
	}
	b = append(b, ')')
	return sfAppendParams(b, ps)
}

func sfAppendItem(b []byte, it sfItem) []byte {
	return sfAppendParams(sfAppendBare(b, it.bare), it.params)
}

// sfAppendParams appends ";key" or ";key=value" for each parameter.
func sfAppendParams(b []byte, ps []sfParam) []byte {
	for _, p := range ps {
		b = append(b, ';')
		b = append(b, p.key...)
		if p.val.typ != sfBoolean || !p.val.flag {
			b = append(b, '=')
			b = sfAppendBare(b, p.val)
		}
	}
	return b
}

// sfAppendBare appends a bare item.
func sfAppendBare(b []byte, v sfBareItem) []byte {
	switch v.typ {
	case sfInteger:
		return strconv.AppendInt(b, v.num, 10)
	case sfDecimal:
		n := v.num
		if n < 0 {
			b = append(b, '-')
			n = -n
		}
		b = strconv.AppendInt(b, n/1000, 10)
		b = append(b, '.')
		f := n % 1000
		b = append(b, byte('0'+f/100))
		if f%100 != 0 {
			b = append(b, byte('0'+f/10%10))
			if f%10 != 0 {
				b = append(b, byte('0'+f%10))
			}
		}
		return b
	case sfString:
		return sfAppendString(b, v.str)
	case sfToken:
		return append(b, v.str...)
	case sfBytes:
		b = append(b, ':')
		b = base64.StdEncoding.AppendEncode(b, v.bin)
		return append(b, ':')
	case sfBoolean:
		if v.flag {
			return append(b, "?1"...)
		}
		return append(b, "?0"...)
	}
	return b
}

// sfAppendString appends s as an sf-string: quoted, with "\" and `"`
// escaped. s must satisfy sfValidString.
func sfAppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// sfValidString reports whether s can be serialized as an sf-string:
// printable ASCII (space included) only.
func sfValidString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// sfValidKey reports whether s is a valid Dictionary or parameter key.
func sfValidKey(s string) bool {
	if s == "" || !(sfIsLower(s[0]) || s[0] == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(sfIsLower(c) || sfIsDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}
