package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's meta page: a 16-byte page header, then magic, version, page
// size, flags (4 bytes each), root bucket (16), freelist, high water mark,
// txid (8 each) and an FNV-64a checksum of the 56 bytes before it, in the
// machine's byte order (little endian on every platform we build for).
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	metaOffset    = 16
	metaSumOffset = metaOffset + 56
)

// checkMetaPages reports a damaged bbolt meta page. bbolt itself falls
// back to the other meta page, that is, to the transaction before the
// last: right after a torn write at power loss (that transaction was never
// acknowledged), but silently losing an acknowledged one when the page
// was damaged later. The two cannot be told apart, so the daemon does not
// guess: `offloadd state repair` continues from the intact page.
func checkMetaPages(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("check state file %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 2*64*1024)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("check state file %s: %w", path, err)
	}
	head = head[:n]
	m0 := validMeta(head, 0)
	pageSize := 0
	if m0 == nil {
		// Find meta 1 at a page size bbolt may have used.
		for _, ps := range []int{4096, 8192, 16384, 32768, 65536} {
			if validMeta(head, ps) != nil {
				pageSize = ps
				break
			}
		}
		return fmt.Errorf("check state file %s: %w: meta page 0 is damaged (meta page 1 %s); "+
			"the last transaction may be lost: run offloadd state repair to continue from the other page", path, ErrDamaged, okWord(pageSize != 0))
	}
	pageSize = int(binary.LittleEndian.Uint32(m0[8:]))
	if validMeta(head, pageSize) == nil {
		return fmt.Errorf("check state file %s: %w: meta page 1 is damaged (meta page 0 ok); "+
			"the last transaction may be lost: run offloadd state repair to continue from the other page", path, ErrDamaged)
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "damaged too"
}

// validMeta returns the meta of the page at off, or nil when it is not a
// valid one.
func validMeta(head []byte, off int) []byte {
	if off < 0 || off+metaSumOffset+8 > len(head) {
		return nil
	}
	m := head[off+metaOffset : off+metaSumOffset+8]
	if binary.LittleEndian.Uint32(m) != boltMagic || binary.LittleEndian.Uint32(m[4:]) != boltVersion {
		return nil
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
		return nil
	}
	ps := int(binary.LittleEndian.Uint32(m[8:]))
	if ps < 512 || ps > 64*1024 || ps&(ps-1) != 0 {
		return nil
	}
	return m
}
