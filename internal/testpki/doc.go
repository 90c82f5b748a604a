// Package testpki makes throwaway certificate authorities and leaf
// certificates for tests: an ECDSA P-256 CA, leaves with URI, DNS and IP
// SANs, a common name and a validity window of the test's choosing, written
// as PEM files the way a daemon or a client reads them.
package testpki
