package metadata

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRawMapRoundTrip(t *testing.T) {
	for _, m := range []RawMap{
		nil,
		{},
		{"ascii": "plain value"},
		{"utf8": "héllo 日本"},
		{"latin1": "h\xe9llo", "nul-looking": "\x00abc", "empty": ""},
		{"invalid": "\xff\xfe\xc3"},
	} {
		b, err := json.Marshal(Object{UserMeta: m, Headers: m})
		if err != nil {
			t.Fatal(err)
		}
		var got Object
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if len(m) == 0 && len(got.UserMeta) == 0 {
			continue
		}
		if !reflect.DeepEqual(got.UserMeta, m) || !reflect.DeepEqual(got.Headers, m) {
			t.Errorf("%q → %s → %q", m, b, got.UserMeta)
		}
	}
}

func FuzzRawMap(f *testing.F) {
	f.Add("h\xe9llo")
	f.Add("\x00")
	f.Fuzz(func(t *testing.T, v string) {
		b, err := json.Marshal(RawMap{"x": v})
		if err != nil {
			t.Fatal(err)
		}
		var got RawMap
		if err := json.Unmarshal(b, &got); err != nil || got["x"] != v {
			t.Fatalf("%q → %s → %q, %v", v, b, got["x"], err)
		}
	})
}
