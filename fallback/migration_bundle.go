package fallback

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// BundleVersion is the bundle format this package writes: MAJOR.MINOR.
// Readers accept any minor version of their major version: a minor version
// only adds fields that older readers may ignore.
const BundleVersion = "1.0"

const bundleMajor = 1

// Bundle is what a source hands to a destination: the port's flows with
// their generations, the conntrack entries of their zones, and the source
// VF's settings.
type Bundle struct {
	Version     string `json:"version"`
	MigrationID string `json:"migrationId"`
	SourceNode  string `json:"sourceNode,omitempty"`
	SourcePort  string `json:"sourcePort"`
	// Serial counts exports of the migration, from 1; a refreshed export
	// has a higher one, and Import takes the newer bundle over the older.
	Serial   uint64    `json:"serial"`
	Exported time.Time `json:"exported"`
	// Flows are the port's flows, in source port names.
	Flows []offload.StoredFlow `json:"flows"`
	// Zones are the conntrack zones exported.
	Zones []uint16    `json:"zones,omitempty"`
	Conns []ConnEntry `json:"conns,omitempty"`
	// VF is the source VF's settings, nil when the port is no VF representor.
	VF *VFSettings `json:"vf,omitempty"`
}

// CheckBundleVersion accepts MAJOR.MINOR versions of major version 1.
func CheckBundleVersion(v string) error {
	maj, _, ok := strings.Cut(v, ".")
	n, err := strconv.Atoi(maj)
	if !ok || err != nil || n < 0 {
		return fmt.Errorf("bundle version %q is not MAJOR.MINOR: %w", v, ErrInvalidRequest)
	}
	if n != bundleMajor {
		return fmt.Errorf("bundle version %s is not supported: this offloadd reads major version %d (%d.x), the exporting daemon must match: %w",
			v, bundleMajor, bundleMajor, ErrInvalidRequest)
	}
	return nil
}

// referencesPort reports whether f enters at port or sends packets to it.
func referencesPort(f *flow.Flow, port string) bool {
	if f.Port == port {
		return true
	}
	return slices.ContainsFunc(f.Actions, func(a flow.Action) bool {
		return (a.Kind == flow.ActRedirect || a.Kind == flow.ActMirror) && a.Port == port
	})
}

// rewritePorts returns a copy of f with every port renamed by ports
// (names not in ports stay).
func rewritePorts(f *flow.Flow, ports map[string]string) *flow.Flow {
	c := f.Clone()
	if to, ok := ports[c.Port]; ok {
		c.Port = to
	}
	for i := range c.Actions {
		a := &c.Actions[i]
		if a.Kind != flow.ActRedirect && a.Kind != flow.ActMirror {
			continue
		}
		if to, ok := ports[a.Port]; ok {
			a.Port = to
		}
	}
	return c
}

// ctZones lists the conntrack zones flows use, in ct actions or as a
// ct_zone match, sorted.
func ctZones(flows []*flow.Flow) []uint16 {
	seen := map[uint16]bool{}
	for _, f := range flows {
		if f.Match.CTZone.Set {
			seen[f.Match.CTZone.V] = true
		}
		for _, a := range f.Actions {
			if a.Kind == flow.ActCT && a.CT != nil && !a.CT.Clear {
				seen[a.CT.Zone] = true
			}
		}
	}
	out := make([]uint16, 0, len(seen))
	for z := range seen {
		out = append(out, z)
	}
	slices.Sort(out)
	return out
}
