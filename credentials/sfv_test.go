package credentials

import (
	"strings"
	"testing"
)

// The cases below are taken from the structured-field-tests suite of the
// HTTP working group (github.com/httpwg/structured-field-tests:
// dictionary.json, param-dict.json, listlist.json, param-listlist.json,
// number.json, string.json, binary.json, boolean.json, token.json), turned
// into Dictionaries where the suite tests a List or an Item ("a=" + the
// item). canonical is the expected serialization; "" for must_fail.

func TestSFParseDictionary(t *testing.T) {
	cases := []struct {
		name, raw, canonical string
	}{
		// dictionary.json
		{"basic dictionary", `en="Applepie", da=:w4ZibGV0w6ZydGUK:`, `en="Applepie", da=:w4ZibGV0w6ZydGUK:`},
		{"empty dictionary", ``, ``},
		{"single item dictionary", `a=1`, `a=1`},
		{"list item dictionary", `a=(1 2)`, `a=(1 2)`},
		{"single list item dictionary", `a=(1)`, `a=(1)`},
		{"empty list item dictionary", `a=()`, `a=()`},
		{"no whitespace dictionary", `a=1,b=2`, `a=1, b=2`},
		{"extra whitespace dictionary", `a=1 ,  b=2`, `a=1, b=2`},
		{"tab separated dictionary", "a=1\t,\tb=2", `a=1, b=2`},
		{"leading whitespace dictionary", `     a=1 ,  b=2`, `a=1, b=2`},
		{"whitespace before = dictionary", `a =1, b=2`, ``},
		{"whitespace after = dictionary", `a=1, b= 2`, ``},
		{"two lines dictionary", "a=1,b=2", `a=1, b=2`},
		{"missing value dictionary", `a=1, b, c=3`, `a=1, b, c=3`},
		{"all missing value dictionary", `a, b, c`, `a, b, c`},
		{"start missing value dictionary", `a, b=2`, `a, b=2`},
		{"end missing value dictionary", `a=1, b`, `a=1, b`},
		{"missing value with params dictionary", `a=1, b;foo=9, c=3`, `a=1, b;foo=9, c=3`},
		{"explicit true value with params dictionary", `a=1, b=?1;foo=9, c=3`, `a=1, b;foo=9, c=3`},
		{"trailing comma dictionary", `a=1, b=2,`, ``},
		{"empty item dictionary", `a=1,,b=2,`, ``},
		{"duplicate key dictionary", `a=1,b=2,a=3`, `a=3, b=2`},
		{"numeric key dictionary", `a=1,1b=2,a=1`, ``},
		{"uppercase key dictionary", `a=1,B=2,a=1`, ``},
		{"bad key dictionary", `a=1,b!=2,a=1`, ``},
		{"trailing whitespace", `a=1  `, `a=1`},
		{"trailing tab", "a=1\t", `a=1`}, // OWS after a member (§4.2.2)
		{"leading tab", "\ta=1", ``},
		{"star key", `*a=1, a*._-9=2`, `*a=1, a*._-9=2`},
		// param-dict.json
		{"basic parameterised dict", `abc=123;a=1;b=2, def=456, ghi=789;q=9;r="+w"`, `abc=123;a=1;b=2, def=456, ghi=789;q=9;r="+w"`},
		{"single item parameterised dict", `a=b; q=1.0`, `a=b;q=1.0`},
		{"list item parameterised dictionary", `a=(1 2); q=1.0`, `a=(1 2);q=1.0`},
		{"missing parameter value parameterised dict", `a=3;c;d=5`, `a=3;c;d=5`},
		{"terminal missing parameter value parameterised dict", `a=3;c=5;d`, `a=3;c=5;d`},
		{"no whitespace parameterised dict", `a=b;c=1,d=e;f=2`, `a=b;c=1, d=e;f=2`},
		{"whitespace before = parameterised dict", `a=b;q =0.5`, ``},
		{"whitespace after = parameterised dict", `a=b;q= 0.5`, ``},
		{"whitespace before ; parameterised dict", `a=b ;q=0.5`, ``},
		{"whitespace after ; parameterised dict", `a=b; q=0.5`, `a=b;q=0.5`},
		{"extra whitespace parameterised dict", `a=b;  c=1  ,  d=e; f=2; g=3`, `a=b;c=1, d=e;f=2;g=3`},
		{"trailing comma parameterised list", `a=b; q=1.0,`, ``},
		{"empty item parameterised list", `a=b; q=1.0,,c=d`, ``},
		{"duplicate parameter", `a=1;x=1;y=2;x=3`, `a=1;x=3;y=2`},
		{"explicit false parameter", `a=1;x=?0`, `a=1;x=?0`},
		// listlist.json, param-listlist.json (inner lists)
		{"basic list of lists", `a=(1 2), b=(42 43)`, `a=(1 2), b=(42 43)`},
		{"empty middle item list of lists", `a=(1),b=(),c=(42)`, `a=(1), b=(), c=(42)`},
		{"extra whitespace list of lists", `a=(  1  42  )`, `a=(1 42)`},
		{"wrong whitespace list of lists", "a=(1\t 42)", ``},
		{"no trailing parenthesis list of lists", `a=(1 42`, ``},
		{"no trailing parenthesis middle list of lists", `a=(1 2, b=(42 43)`, ``},
		{"no spaces in inner-list", `a=(abc"def"?0123*dXZ3*xyz)`, ``},
		{"parameterised inner list", `a=(abc_123);a=1;b=2, b=cdef_456`, `a=(abc_123);a=1;b=2, b=cdef_456`},
		{"parameterised inner list item", `a=(abc_123;a=1;b=2;cdef_456)`, `a=(abc_123;a=1;b=2;cdef_456)`},
		{"parameterised inner list with parameterised item", `a=(abc_123;a=1;b=2);cdef_456`, `a=(abc_123;a=1;b=2);cdef_456`},
		{"nested inner list", `a=((1))`, ``},
		{"inner list then garbage", `a=(1)x`, ``},
		{"comma in inner list", `a=(1,2)`, ``},
		// number.json
		{"basic integer", `a=42`, `a=42`},
		{"zero integer", `a=0`, `a=0`},
		{"leading 0 zero", `a=00`, `a=0`},
		{"negative zero", `a=-0`, `a=0`},
		{"double negative zero", `a=--0`, ``},
		{"negative integer", `a=-42`, `a=-42`},
		{"leading 0 integer", `a=042`, `a=42`},
		{"leading 0 negative integer", `a=-042`, `a=-42`},
		{"comma", `a=2,3`, ``},
		{"negative non-DIGIT first character", `a=-a23`, ``},
		{"sign out of place", `a=4-2`, ``},
		{"whitespace after sign", `a=- 42`, ``},
		{"long integer", `a=123456789012345`, `a=123456789012345`},
		{"long negative integer", `a=-123456789012345`, `a=-123456789012345`},
		{"too long integer", `a=1234567890123456`, ``},
		{"negative too long integer", `a=-1234567890123456`, ``},
		{"simple decimal", `a=1.23`, `a=1.23`},
		{"negative decimal", `a=-1.23`, `a=-1.23`},
		{"decimal, whitespace after decimal", `a=1. 23`, ``},
		{"decimal, whitespace before decimal", `a=1 .23`, ``},
		{"negative decimal, whitespace after sign", `a=- 1.23`, ``},
		{"tricky precision decimal", `a=123456789012.1`, `a=123456789012.1`},
		{"double decimal decimal", `a=1.5.4`, ``},
		{"adjacent double decimal decimal", `a=1..4`, ``},
		{"decimal with three fractional digits", `a=1.123`, `a=1.123`},
		{"negative decimal with three fractional digits", `a=-1.123`, `a=-1.123`},
		{"decimal with four fractional digits", `a=1.1234`, ``},
		{"negative decimal with four fractional digits", `a=-1.1234`, ``},
		{"decimal with thirteen integer digits", `a=1234567890123.0`, ``},
		{"negative decimal with thirteen integer digits", `a=-1234567890123.0`, ``},
		{"decimal trailing zeros", `a=1.500`, `a=1.5`},
		{"decimal zero", `a=0.000`, `a=0.0`},
		{"decimal small", `a=0.005`, `a=0.005`},
		{"decimal ending with dot", `a=1.`, ``},
		{"decimal 12 integer digits", `a=999999999999.999`, `a=999999999999.999`},
		// string.json
		{"basic string", `a="foo bar"`, `a="foo bar"`},
		{"empty string", `a=""`, `a=""`},
		{"whitespace string", `a="   "`, `a="   "`},
		{"non-ascii string", "a=\"f\u00fc\u00fc\"", ``},
		{"tab in string", "a=\"\t\"", ``},
		{"newline in string", "a=\" \n \"", ``},
		{"single quoted string", `a='foo'`, ``},
		{"unbalanced string", `a="foo`, ``},
		{"string quoting", `a="foo \"bar\" \\ baz"`, `a="foo \"bar\" \\ baz"`},
		{"bad string quoting", `a="foo \,"`, ``},
		{"ending string quote", `a="foo \"`, ``},
		{"abruptly ending string quote", `a="foo \`, ``},
		{"DEL in string", "a=\"\x7f\"", ``},
		// binary.json
		{"basic binary", `a=:aGVsbG8=:`, `a=:aGVsbG8=:`},
		{"empty binary", `a=::`, `a=::`},
		{"bad padding", `a=:aGVsbG8:`, `a=:aGVsbG8=:`},
		{"bad end delimiter", `a=:aGVsbG8=`, ``},
		{"extra whitespace", `a=:aGVsb G8=:`, ``},
		{"extra chars", `a=:aGVsbG!8=:`, ``},
		{"suffix chars", `a=:aGVsbG8=!:`, ``},
		{"non-zero pad bits", `a=:iZ==:`, `a=:iQ==:`},
		{"non-ASCII binary", `a=:/+Ah:`, `a=:/+Ah:`},
		{"base64url binary", `a=:_-Ah:`, ``},
		{"too much padding", `a=:aGVsbG8===:`, ``},
		{"padding inside", `a=:aG=VsbG8=:`, ``},
		{"one char", `a=:a:`, ``},
		// boolean.json
		{"basic true boolean", `a=?1`, `a`},
		{"basic false boolean", `a=?0`, `a=?0`},
		{"unknown boolean", `a=?Q`, ``},
		{"whitespace boolean", `a=? 1`, ``},
		{"negative zero boolean", `a=?-0`, ``},
		{"T boolean", `a=?T`, ``},
		{"F boolean", `a=?F`, ``},
		{"t boolean", `a=?t`, ``},
		{"f boolean", `a=?f`, ``},
		{"spelled-out True boolean", `a=?True`, ``},
		{"spelled-out False boolean", `a=?False`, ``},
		// token.json
		{"basic token - item", `a=a_b-c.d3:f%00/*`, `a=a_b-c.d3:f%00/*`},
		{"token with capitals - item", `a=fooBar`, `a=fooBar`},
		{"token starting with capitals - item", `a=FooBar`, `a=FooBar`},
		{"star token", `a=*`, `a=*`},
		{"token with bad char", `a=a"b`, ``},
		{"token starting with digit", `a=1a`, ``},
		// RFC 9651 types are not RFC 8941
		{"date", `a=@1659578233`, ``},
		{"display string", `a=%"x"`, ``},
		// misc
		{"non-ASCII after a member", "a=1\u00e9", ``},
		{"only comma", `,`, ``},
		{"only space", `   `, ``},
		{"equals only", `a=`, ``},
	}
	for _, c := range cases {
		ms, err := sfParseDictionary(c.raw, sfOptions{})
		if c.canonical == "" && c.raw != "" && c.raw != "   " {
			if err == nil {
				t.Errorf("%s: %q parsed as %q, want an error", c.name, c.raw, sfAppendDictionary(nil, ms))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %q: %v", c.name, c.raw, err)
			continue
		}
		got := string(sfAppendDictionary(nil, ms))
		if got != c.canonical {
			t.Errorf("%s: %q serialized as %q, want %q", c.name, c.raw, got, c.canonical)
			continue
		}
		// The canonical form parses to itself.
		ms2, err := sfParseDictionary(got, sfOptions{})
		if err != nil || string(sfAppendDictionary(nil, ms2)) != got {
			t.Errorf("%s: canonical %q does not round-trip (%v)", c.name, got, err)
		}
	}
}

func TestSFValues(t *testing.T) {
	ms, err := sfParseDictionary(`i=-7, d=-12.5, s="a\"b", t=x/y, b=:AAEC:, f=?0, p;q=1.5;r`, sfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key string
		v   sfBareItem
	}{
		{"i", sfBareItem{typ: sfInteger, num: -7}},
		{"d", sfBareItem{typ: sfDecimal, num: -12500}},
		{"s", sfBareItem{typ: sfString, str: `a"b`}},
		{"t", sfBareItem{typ: sfToken, str: "x/y"}},
		{"b", sfBareItem{typ: sfBytes, bin: []byte{0, 1, 2}}},
		{"f", sfBareItem{typ: sfBoolean}},
		{"p", sfTrue},
	}
	for i, w := range want {
		m := ms[i]
		if m.key != w.key || m.inner || m.item.bare.typ != w.v.typ || m.item.bare.num != w.v.num ||
			m.item.bare.str != w.v.str || string(m.item.bare.bin) != string(w.v.bin) || m.item.bare.flag != w.v.flag {
			t.Errorf("member %d = %+v, want %s=%+v", i, m, w.key, w.v)
		}
	}
	if ps := ms[6].item.params; len(ps) != 2 || ps[0].key != "q" || ps[0].val.num != 1500 || ps[1].key != "r" || !ps[1].val.flag {
		t.Errorf("params = %+v", ps)
	}
	// Members and keys without escapes are substrings of the input (no
	// copy); the offsets delimit each value.
	in := `sig1=("@method");created=1, sig2=:AAEC:`
	ms, err = sfParseDictionary(in, sfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in[ms[0].start:ms[0].end] != `("@method");created=1` || in[ms[1].start:ms[1].end] != `:AAEC:` {
		t.Errorf("offsets %d-%d, %d-%d", ms[0].start, ms[0].end, ms[1].start, ms[1].end)
	}
}

func TestSFOptions(t *testing.T) {
	cases := []struct {
		in string
		o  sfOptions
	}{
		{`a=1, a=2`, sfOptions{noDupKeys: true}},
		{`a=1;x;x`, sfOptions{noDupParams: true}},
		{`a=(1;x;x)`, sfOptions{noDupParams: true}},
		{`a=();x;x`, sfOptions{noDupParams: true}},
		{`a=:aGVsbG8:`, sfOptions{strictBytes: true}},
		{`a=:iZ==:`, sfOptions{strictBytes: true}},
		{`a, b, c`, sfOptions{maxMembers: 2}},
		{`a=(1 2 3)`, sfOptions{maxItems: 2}},
		{`a;x;y;z`, sfOptions{maxParams: 2}},
	}
	for _, c := range cases {
		if _, err := sfParseDictionary(c.in, sfOptions{}); err != nil {
			t.Errorf("%q without options: %v", c.in, err)
		}
		if _, err := sfParseDictionary(c.in, c.o); err == nil {
			t.Errorf("%q with %+v: no error", c.in, c.o)
		}
	}
	// The bounds are inclusive.
	if _, err := sfParseDictionary(`a, b`, sfOptions{maxMembers: 2}); err != nil {
		t.Error(err)
	}
	if _, err := sfParseDictionary(`a=:aGVsbG8=:`, sfOptions{strictBytes: true}); err != nil {
		t.Error(err)
	}
}

// TestSFInnerListRoundTrip serializes inner lists with parameters of
// every type and parses them back.
func TestSFInnerListRoundTrip(t *testing.T) {
	items := []sfItem{
		{bare: sfBareItem{typ: sfString, str: "@query-param"}, params: []sfParam{{"name", sfBareItem{typ: sfString, str: `q"\ x`}}}},
		{bare: sfBareItem{typ: sfString, str: "content-digest"}},
		{bare: sfBareItem{typ: sfToken, str: "tok/en:1"}, params: []sfParam{{"f", sfTrue}, {"g", sfBareItem{typ: sfBoolean}}}},
		{bare: sfBareItem{typ: sfInteger, num: -999999999999999}},
		{bare: sfBareItem{typ: sfDecimal, num: 123456789012345}, params: []sfParam{{"d", sfBareItem{typ: sfDecimal, num: -10}}}},
		{bare: sfBareItem{typ: sfBytes, bin: []byte{0xfb, 0xff}}},
	}
	params := []sfParam{
		{"created", sfBareItem{typ: sfInteger, num: 1618884473}},
		{"keyid", sfBareItem{typ: sfString, str: "test-key"}},
		{"*x", sfTrue},
	}
	const want = `("@query-param";name="q\"\\ x" "content-digest" tok/en:1;f;g=?0 -999999999999999 123456789012.345;d=-0.01 :+/8=:);created=1618884473;keyid="test-key";*x`
	got := string(sfAppendInnerList(nil, items, params))
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	ms, err := sfParseDictionary("k="+got, sfOptions{strictBytes: true, noDupKeys: true, noDupParams: true})
	if err != nil {
		t.Fatal(err)
	}
	if again := string(sfAppendInnerList(nil, ms[0].list, ms[0].params)); again != want {
		t.Errorf("reparsed: %s", again)
	}
	if !sfValidKey("a*._-9") || sfValidKey("") || sfValidKey("A") || sfValidKey("9a") || sfValidKey("a b") {
		t.Error("sfValidKey")
	}
	if !sfValidString(" ~") || sfValidString("\x7f") || sfValidString("\t") || sfValidString("\u00e9") {
		t.Error("sfValidString")
	}
}

func TestSFErrorsDoNotQuote(t *testing.T) {
	in := `a="` + strings.Repeat("secret", 10) + "\x01"
	_, err := sfParseDictionary(in, sfOptions{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v", err)
	}
}
