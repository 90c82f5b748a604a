package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// A record is the value stored under a flow's ID. Schema 3 records carry
// a checksum:
//
//	0x00 0x03 | CRC-32C, big endian, over key and body | body
//	body: uvarint generation | flow.AppendBinary
//
// Schema 2 records are the body alone. Their first byte is a generation
// (never 0) or, for generation 0, followed by flow.binaryVersion (1), so a
// schema 3 record never decodes as a schema 2 one.
const (
	recTag0    = 0x00
	recTag1    = 0x03
	recHdrSize = 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrDamaged marks a state file or record that fails its integrity checks.
var ErrDamaged = errors.New("state damaged")

// appendRecord appends the schema 3 record of f under key to buf.
func appendRecord(buf, key []byte, gen uint64, f *flow.Flow) []byte {
	start := len(buf)
	buf = append(buf, recTag0, recTag1, 0, 0, 0, 0)
	buf = flow.AppendBinary(binary.AppendUvarint(buf, gen), f)
	crc := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, buf[start+recHdrSize:])
	binary.BigEndian.PutUint32(buf[start+2:], crc)
	return buf
}

// isChecksummed reports whether v has the schema 3 header.
func isChecksummed(v []byte) bool {
	return len(v) >= recHdrSize && v[0] == recTag0 && v[1] == recTag1
}

// storedCRC returns the checksum field of a schema 3 record, or 0 for
// anything else. The file's summary XORs these fields.
func storedCRC(v []byte) uint32 {
	if !isChecksummed(v) {
		return 0
	}
	return binary.BigEndian.Uint32(v[2:])
}

// decodeRecord decodes the record v stored under key. A record without a
// checksum is accepted only when legacyOK (a schema 2 file); legacy says
// it was one.
func decodeRecord(key, v []byte, legacyOK bool) (sf offload.StoredFlow, legacy bool, err error) {
	body := v
	if isChecksummed(v) {
		body = v[recHdrSize:]
		want := binary.BigEndian.Uint32(v[2:])
		if got := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body); got != want {
			return sf, false, fmt.Errorf("%w: checksum 0x%08x, record says 0x%08x", ErrDamaged, got, want)
		}
	} else {
		if !legacyOK {
			return sf, false, fmt.Errorf("%w: record without checksum in a schema %s file", ErrDamaged, schemaVersion)
		}
		legacy = true
	}
	gen, n := binary.Uvarint(body)
	if n <= 0 {
		return sf, legacy, fmt.Errorf("%w: bad generation", ErrDamaged)
	}
	f, err := flow.DecodeBinary(body[n:])
	if err != nil {
		return sf, legacy, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if f.ID != string(key) {
		return sf, legacy, fmt.Errorf("%w: record names flow %q", ErrDamaged, f.ID)
	}
	return offload.StoredFlow{Flow: f, Generation: gen}, legacy, nil
}

// summary is the flows bucket's record count and the XOR of its records'
// checksum fields, kept in the meta bucket and updated by every write, so
// a record that vanishes (a damaged page header or branch) is noticed.
type summary struct {
	count uint64
	xor   uint32
}

const summarySize = 16

func (s summary) encode() []byte {
	b := make([]byte, summarySize)
	binary.BigEndian.PutUint64(b, s.count)
	binary.BigEndian.PutUint32(b[8:], s.xor)
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}

func decodeSummary(b []byte) (summary, error) {
	if len(b) != summarySize {
		return summary{}, fmt.Errorf("%w: summary of %d bytes", ErrDamaged, len(b))
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.BigEndian.Uint32(b[12:]) {
		return summary{}, fmt.Errorf("%w: summary checksum", ErrDamaged)
	}
	return summary{count: binary.BigEndian.Uint64(b), xor: binary.BigEndian.Uint32(b[8:])}, nil
}
