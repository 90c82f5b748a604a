package tcflower

import (
	"bytes"
	"crypto/sha256"
)

// CookieMagic starts every cookie offloadd writes.
const CookieMagic = "oFLD"

// CookieLen is the cookie size: TC_COOKIE_MAX_SIZE.
const CookieLen = 16

// CookieFor returns the action cookie that marks a filter as flow id's:
// "oFLD" followed by the first 12 bytes of SHA-256(id).
func CookieFor(id string) [CookieLen]byte {
	var c [CookieLen]byte
	copy(c[:], CookieMagic)
	h := sha256.Sum256([]byte(id))
	copy(c[4:], h[:12])
	return c
}

// ParseCookie returns the hash part of an offloadd cookie; ok is false for
// cookies offloadd did not write.
func ParseCookie(b []byte) (hash [12]byte, ok bool) {
	if len(b) != CookieLen || !bytes.HasPrefix(b, []byte(CookieMagic)) {
		return hash, false
	}
	copy(hash[:], b[4:])
	return hash, true
}
