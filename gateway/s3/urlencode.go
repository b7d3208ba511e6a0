package s3

import "strings"

// URLEncode encodes a key name as S3 does in listings asked for with
// encoding-type=url: every byte but the unreserved ones (A-Z a-z 0-9 - _
// . ~) and '/' as %XX, a space as '+' (what botocore's unquote_plus and
// minio-go's decoding undo).
func URLEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
