package fallback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// The live-migration handoff moves a workload's flows and connection state
// from the node it leaves (the source) to the node it goes to (the
// destination) while its VF is unplugged and the guest runs on its virtio
// standby path. Every step is idempotent by migration ID:
//
//	destination  Prepare    reserve a VF, hold the representor's flows in software
//	source       Drain      move every flow of the port to software, verified on the device
//	source       Export     the port's flows and conntrack entries as a Bundle
//	destination  Import     install the flows (in software) and conntrack entries
//	destination  Reoffload  after the VF is attached: flows back to hardware
//	source       Commit     remove the flows and entries, release the VF
//	destination  Commit     forget what Abort would have undone (optional)
//	either       Abort      before Commit: put the node back as it was
//
// See docs/migration.md for where each step goes in Nova's and KubeVirt's
// migration sequences.

// MigrationEngine is the part of the engine the handoff drives (offload.Engine).
type MigrationEngine interface {
	List(f offload.Filter) []offload.Status
	Get(id string) (offload.Status, bool)
	Delete(ctx context.Context, ids []string) ([]offload.DeleteResult, error)
	DrainPort(ctx context.Context, port, why string) (int, error)
	UndrainPort(port string)
	HoldInSoftware(ctx context.Context, ids []string, why string) (int, error)
	ApplyHeld(ctx context.Context, flows []offload.StoredFlow, why string) ([]offload.Result, error)
	ReleaseHeld(ctx context.Context, ids []string) (int, error)
	Devices() []nic.Device
}

var _ MigrationEngine = (*offload.Engine)(nil)

// Sentinel errors; the API maps them to gRPC codes.
var (
	// ErrInvalidRequest: a malformed request or bundle (InvalidArgument).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrStep: the step does not fit the migration's state on this node:
	// out of order, wrong side, already aborted or committed (FailedPrecondition).
	ErrStep = errors.New("wrong migration step")
	// ErrConflict: the request contradicts the node's state, such as a flow
	// ID held by another flow (FailedPrecondition).
	ErrConflict = errors.New("conflict")
	// ErrIncomplete: the step could not finish yet; repeat it (Unavailable).
	ErrIncomplete = errors.New("incomplete, retry")
	// ErrUnknown: no migration with that ID on this node (NotFound).
	ErrUnknown = errors.New("unknown migration")
)

// Role is which side of a migration a node is.
type Role uint8

const (
	RoleSource Role = iota + 1
	RoleDestination
)

func (r Role) String() string {
	switch r {
	case RoleSource:
		return "source"
	case RoleDestination:
		return "destination"
	}
	return "unknown"
}

// MarshalText writes the role's name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	for _, c := range []Role{0, RoleSource, RoleDestination} {
		if c.String() == string(b) {
			*r = c
			return nil
		}
	}
	return fmt.Errorf("unknown migration role %q", b)
}

// Step is the last step a migration finished on this node.
type Step uint8

const (
	// StepNone: started, no step finished (a failed first step left changes).
	StepNone Step = iota
	StepPrepared
	StepDrained
	StepExported
	StepImported
	StepReoffloaded
	StepCommitted
	StepAborted
)

var stepNames = [...]string{"started", "prepared", "drained", "exported", "imported", "reoffloaded", "committed", "aborted"}

func (s Step) String() string {
	if int(s) < len(stepNames) {
		return stepNames[s]
	}
	return "unknown"
}

// MarshalText writes the step's name.
func (s Step) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a step's name.
func (s *Step) UnmarshalText(b []byte) error {
	for i, n := range stepNames {
		if n == string(b) {
			*s = Step(i)
			return nil
		}
	}
	return fmt.Errorf("unknown migration step %q", b)
}

// Finished reports whether the migration ended on this node.
func (s Step) Finished() bool { return s == StepCommitted || s == StepAborted }

// Placement is where one flow runs.
type Placement struct {
	ID         string        `json:"id"`
	State      offload.State `json:"state"`
	Reasons    []nic.Reason  `json:"reasons,omitempty"`
	Generation uint64        `json:"generation"`
}

// Migration is the state of one migration on this node.
type Migration struct {
	ID   string `json:"id"`
	Role Role   `json:"role"`
	Step Step   `json:"step"`
	// Port is the workload's port on this node: the source port, or the
	// destination representor.
	Port string `json:"port,omitempty"`
	// SourcePort is the workload's port on the source node.
	SourcePort string `json:"sourcePort,omitempty"`
	// VF is the VF reserved (destination) or the source VF.
	VF *VFLease `json:"vf,omitempty"`
	// Flows and Conns count the flows and conntrack entries moved.
	Flows   int       `json:"flows"`
	Conns   int       `json:"conns"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// PrepareRequest asks the destination to get ready for a workload.
type PrepareRequest struct {
	ID string
	// SourcePort is the workload's port on the source node. Required.
	SourcePort string
	// Port is the destination representor to use instead of reserving a VF.
	Port string
	// VF are the settings for the reserved VF; nil takes the bundle's at Import.
	VF *VFSettings
	// Flows, in source port names, are installed in software at once.
	Flows []offload.StoredFlow
	// PortMap renames other ports (uplink, tunnel) from source to destination names.
	PortMap map[string]string
}

// PrepareResult is what Prepare did.
type PrepareResult struct {
	// Port is the destination representor the workload's flows use.
	Port  string      `json:"port"`
	VF    *VFLease    `json:"vf,omitempty"`
	Flows []Placement `json:"flows,omitempty"`
}

// DrainRequest asks the source to move a port's flows to software.
type DrainRequest struct {
	ID   string
	Port string
}

// DrainResult is what Drain did. No flow of the port is in hardware.
type DrainResult struct {
	Port string `json:"port"`
	// Flows is the number of the port's flows; Moved those that left
	// hardware; Held those entering on other ports that send to it.
	Flows int `json:"flows"`
	Moved int `json:"moved"`
	Held  int `json:"held"`
}

// ExportRequest asks the source for the bundle.
type ExportRequest struct {
	ID string
	// Zones replaces the conntrack zones the port's flows use.
	Zones []uint16
	// Addresses limits conntrack entries to those with an address in one
	// of these prefixes (the workload's); needed for zone 0.
	Addresses []netip.Prefix
	// Refresh takes a new snapshot after an earlier Export (Serial + 1).
	Refresh bool
}

// ImportRequest hands the bundle to the destination.
type ImportRequest struct {
	ID     string
	Bundle *Bundle
	// PortMap adds to and overrides Prepare's port map.
	PortMap map[string]string
}

// ImportResult is what Import did.
type ImportResult struct {
	Serial uint64 `json:"serial"`
	// Flow outcomes; Removed counts flows installed earlier by this
	// migration that the bundle no longer has.
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
	// Conntrack entries created and updated.
	ConnsCreated int         `json:"connsCreated"`
	ConnsUpdated int         `json:"connsUpdated"`
	Flows        []Placement `json:"flows"`
}

// ReoffloadResult is where each flow runs after Reoffload.
type ReoffloadResult struct {
	Hardware int         `json:"hardware"`
	Software int         `json:"software"`
	Flows    []Placement `json:"flows"`
}

// CommitResult is what Commit removed.
type CommitResult struct {
	FlowsRemoved int  `json:"flowsRemoved"`
	ConnsRemoved int  `json:"connsRemoved"`
	VFReleased   bool `json:"vfReleased"`
}

// AbortResult is what Abort undid.
type AbortResult struct {
	FlowsRemoved  int  `json:"flowsRemoved"`
	ConnsRemoved  int  `json:"connsRemoved"`
	ConnsRestored int  `json:"connsRestored"`
	VFReleased    bool `json:"vfReleased"`
	// Flows is where the migration's flows run now (source).
	Flows []Placement `json:"flows,omitempty"`
	// NotRestored names source flows that were in hardware before the
	// migration and are not now (for example the table filled up); the
	// promoter keeps trying them.
	NotRestored []string `json:"notRestored,omitempty"`
}

// MigratorConfig wires a Migrator. Engine is required.
type MigratorConfig struct {
	Engine MigrationEngine
	// Conntrack is the node's conntrack table; nil moves no connection state.
	Conntrack ConnTable
	// VFs reserves and releases VFs; nil: Prepare needs an explicit port
	// and Commit releases no VF.
	VFs VFPool
	// Store persists migration records; nil keeps them in memory only.
	Store RecordStore
	// Node names this node in exported bundles (default: empty).
	Node string
	// Retention is how long finished migrations are remembered, so that
	// repeated Commit and Abort calls still answer (default 24h).
	Retention time.Duration
	Logger    *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Migrator runs the handoff's steps on one node. It is safe for
// concurrent use; steps of one migration are serialized.
type Migrator struct {
	eng       MigrationEngine
	ct        ConnTable
	vfs       VFPool
	store     RecordStore
	node      string
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time

	mu   sync.Mutex
	recs map[string]*slot
}

// slot serializes the steps of one migration.
type slot struct {
	mu sync.Mutex
	r  *record // nil until the first step records something
}

// recordVersion is the layout version of persisted records.
const recordVersion = 1

// record is one migration's persisted state: the step reached, each
// step's result (returned again when the step is repeated), and what was
// changed, for Abort.
type record struct {
	Version    int       `json:"version"`
	ID         string    `json:"id"`
	Role       Role      `json:"role"`
	Step       Step      `json:"step"`
	Port       string    `json:"port,omitempty"`
	SourcePort string    `json:"sourcePort,omitempty"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	VF         *VFLease  `json:"vf,omitempty"`
	// VFReserved: the destination reserved VF (Abort releases it).
	VFReserved bool `json:"vfReserved,omitempty"`
	// VFExplicit: Prepare set the VF's settings; the bundle's do not apply.
	VFExplicit bool `json:"vfExplicit,omitempty"`

	// Source: the port's flows (union of Drain's and Export's), those
	// held on other ingress ports, and placements before Drain.
	Flows  []string     `json:"flows,omitempty"`
	Held   []string     `json:"held,omitempty"`
	Moved  int          `json:"moved,omitempty"`
	Before []Placement  `json:"before,omitempty"`
	Drain  *DrainResult `json:"drain,omitempty"`
	// Committing: Commit started removing things; Abort can no longer undo it.
	Committing bool          `json:"committing,omitempty"`
	Bundle     *Bundle       `json:"bundle,omitempty"`
	Commit     *CommitResult `json:"commit,omitempty"`

	// Destination: the flows and conntrack entries installed, for Abort.
	PortMap   map[string]string `json:"portMap,omitempty"`
	Installed []installedFlow   `json:"installed,omitempty"`
	Conns     []importedConn    `json:"conns,omitempty"`
	Prepare   *PrepareResult    `json:"prepare,omitempty"`
	Import    *ImportResult     `json:"import,omitempty"`
	Reoffload *ReoffloadResult  `json:"reoffload,omitempty"`

	Abort *AbortResult `json:"abort,omitempty"`
}

// installedFlow is a flow the destination installed or adopted.
type installedFlow struct {
	ID string `json:"id"`
	// Adopted: an equal flow was there before the migration; Abort keeps it.
	Adopted bool `json:"adopted,omitempty"`
}

// importedConn is a conntrack entry the destination created or updated.
type importedConn struct {
	Key ConnKey `json:"key"`
	// Prev is the entry Import replaced; nil when Import created it.
	Prev *ConnEntry `json:"prev,omitempty"`
}

// NewMigrator builds a Migrator and loads the records of its store.
// Call Recover once the engine has restored its flows.
func NewMigrator(cfg MigratorConfig) (*Migrator, error) {
	if cfg.Engine == nil {
		return nil, errors.New("new migrator: no engine")
	}
	m := &Migrator{eng: cfg.Engine, ct: cfg.Conntrack, vfs: cfg.VFs, store: cfg.Store, node: cfg.Node,
		retention: cfg.Retention, log: cfg.Logger, now: cfg.Now, recs: map[string]*slot{}}
	if m.retention <= 0 {
		m.retention = 24 * time.Hour
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.store == nil {
		return m, nil
	}
	saved, err := m.store.Load()
	if err != nil {
		return nil, fmt.Errorf("new migrator: %w", err)
	}
	for id, data := range saved {
		var r record
		if err := json.Unmarshal(data, &r); err != nil || r.Version != recordVersion || r.ID != id {
			m.log.Warn("skipping unreadable migration record", "migration", id, "err", err, "version", r.Version)
			continue
		}
		m.recs[id] = &slot{r: &r}
	}
	return m, nil
}

// Recover re-establishes what a restart undoes: the engine forgets which
// ports drain and which flows are held, so in-flight migrations would see
// their flows promoted to hardware. Call it after the engine's Restore and
// before the promoter runs. It also forgets migrations that finished more
// than Retention ago.
func (m *Migrator) Recover(ctx context.Context) error {
	m.mu.Lock()
	slots := slices.Collect(maps.Values(m.recs))
	m.mu.Unlock()
	var errs []error
	for _, s := range slots {
		s.mu.Lock()
		r := s.r
		if r == nil {
			s.mu.Unlock()
			continue
		}
		if r.Step.Finished() {
			if m.now().Sub(r.Updated) > m.retention {
				m.forget(r.ID)
			}
			s.mu.Unlock()
			continue
		}
		if a, ok := m.vfs.(VFAdopter); ok && r.VF != nil && r.VFReserved {
			a.Adopt(*r.VF)
		}
		if err := m.hold(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("recover migration %s: %w", r.ID, err))
		} else {
			m.log.Info("recovered migration", "migration", r.ID, "role", r.Role.String(), "step", r.Step.String())
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// hold drains the migration's port and holds its flows, as the steps left them.
func (m *Migrator) hold(ctx context.Context, r *record) error {
	if r.Port == "" {
		return nil
	}
	var ids []string
	switch r.Role {
	case RoleSource:
		if r.Step == StepNone && len(r.Flows) == 0 {
			return nil
		}
		ids = r.Held
	case RoleDestination:
		if r.Step >= StepReoffloaded {
			return nil
		}
		ids = installedIDs(r.Installed, true)
	}
	if _, err := m.eng.DrainPort(ctx, r.Port, m.why(r)); err != nil {
		return err
	}
	_, err := m.eng.HoldInSoftware(ctx, ids, m.why(r))
	return err
}

// why is the reason the migration's flows report while held in software.
func (m *Migrator) why(r *record) string {
	if r.Role == RoleDestination {
		return "awaiting VF attach for migration " + r.ID
	}
	return "live migration " + r.ID + " of port " + r.Port + " to another node"
}

// Get returns one migration.
func (m *Migrator) Get(id string) (Migration, error) {
	s := m.lookup(id)
	if s == nil {
		return Migration{}, fmt.Errorf("migration %s: %w", id, ErrUnknown)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		return Migration{}, fmt.Errorf("migration %s: %w", id, ErrUnknown)
	}
	return s.r.view(), nil
}

// List returns every migration this node remembers, by ID.
func (m *Migrator) List() []Migration {
	m.mu.Lock()
	slots := slices.Collect(maps.Values(m.recs))
	m.mu.Unlock()
	var out []Migration
	for _, s := range slots {
		s.mu.Lock()
		if s.r != nil {
			out = append(out, s.r.view())
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Migration) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (r *record) view() Migration {
	v := Migration{ID: r.ID, Role: r.Role, Step: r.Step, Port: r.Port, SourcePort: r.SourcePort,
		Created: r.Created, Updated: r.Updated}
	if r.VF != nil {
		vf := *r.VF
		v.VF = &vf
	}
	switch r.Role {
	case RoleSource:
		v.Flows = len(r.Flows)
		if r.Bundle != nil {
			v.Conns = len(r.Bundle.Conns)
		}
	case RoleDestination:
		v.Flows, v.Conns = len(r.Installed), len(r.Conns)
	}
	return v
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// checkID accepts 1 to 128 letters, digits, '.', '_', ':' and '-',
// starting with a letter or digit (UUIDs and Kubernetes UIDs fit).
func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("migration id %q: want 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit: %w", id, ErrInvalidRequest)
	}
	return nil
}

func (m *Migrator) lookup(id string) *slot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recs[id]
}

// begin locks the migration's slot, creating it when missing. The caller
// unlocks s.mu.
func (m *Migrator) begin(id string) (*slot, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	s, ok := m.recs[id]
	if !ok {
		s = &slot{}
		m.recs[id] = s
	}
	m.mu.Unlock()
	s.mu.Lock()
	return s, nil
}

// newRecord starts a record for a first step.
func (m *Migrator) newRecord(id string, role Role) *record {
	now := m.now()
	return &record{Version: recordVersion, ID: id, Role: role, Created: now, Updated: now}
}

// save persists r. A record that cannot be saved fails the step: a restart
// would otherwise lose what Abort must undo.
func (m *Migrator) save(r *record) error {
	r.Updated = m.now()
	if m.store == nil {
		return nil
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode migration %s: %w", r.ID, err)
	}
	return m.store.Save(r.ID, data)
}

func (m *Migrator) forget(id string) {
	m.mu.Lock()
	delete(m.recs, id)
	m.mu.Unlock()
	if m.store != nil {
		if err := m.store.Delete(id); err != nil {
			m.log.Warn("forget finished migration", "migration", id, "err", err)
		}
	}
}

// wrongSide reports a step on the other side's node.
func wrongSide(op string, r *record, want Role) error {
	return fmt.Errorf("%s migration %s: this node is the %s of the migration; %s runs on the %s: %w",
		op, r.ID, r.Role, op, want, ErrStep)
}

// finished reports a step after the migration ended.
func finished(op string, r *record) error {
	return fmt.Errorf("%s migration %s: the migration was %s on this node: %w", op, r.ID, r.Step, ErrStep)
}

// expect reports a step that came too early.
func expect(op string, r *record, first string) error {
	return fmt.Errorf("%s migration %s: the migration is %s on this node; expected %s first: %w",
		op, r.ID, r.Step, first, ErrStep)
}

// portExists reports whether some device of the engine has the port.
func (m *Migrator) portExists(name string) bool {
	for _, d := range m.eng.Devices() {
		if slices.ContainsFunc(d.Ports(), func(p nic.Port) bool { return p.Name == name }) {
			return true
		}
	}
	return false
}

// portFlows lists the flows that enter at port or send packets to it.
func (m *Migrator) portFlows(port string) []offload.Status {
	var out []offload.Status
	for _, st := range m.eng.List(offload.Filter{}) {
		if referencesPort(st.Flow, port) {
			out = append(out, st)
		}
	}
	return out
}

// inHardware reads every device's copies and returns the IDs of those in
// hardware (skip_sw, or no skip flag and in_hw) that are in ids or
// reference port, sorted.
func (m *Migrator) inHardware(ctx context.Context, port string, ids []string) ([]string, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []string
	for _, d := range m.eng.Devices() {
		inst, err := nic.ReadAllFlows(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("read flows of %s: %w", d.Info().Name, err)
		}
		for _, in := range inst {
			if in.Plane != flow.Software && in.InHW && (want[in.Flow.ID] || referencesPort(in.Flow, port)) {
				out = append(out, in.Flow.ID)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// placements returns where each of ids runs now; unknown IDs are left out.
func (m *Migrator) placements(ids []string) []Placement {
	out := make([]Placement, 0, len(ids))
	for _, id := range ids {
		if st, ok := m.eng.Get(id); ok {
			out = append(out, placementOf(st))
		}
	}
	slices.SortFunc(out, func(a, b Placement) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func placementOf(st offload.Status) Placement {
	return Placement{ID: st.Flow.ID, State: st.State, Reasons: slices.Clone(st.Reasons), Generation: st.Generation}
}

// installedIDs lists the IDs of installed flows, with or without adopted ones.
func installedIDs(fs []installedFlow, adopted bool) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if adopted || !f.Adopted {
			out = append(out, f.ID)
		}
	}
	return out
}

// briefIDs formats at most 10 IDs for a message.
func briefIDs(ids []string) string {
	if len(ids) <= 10 {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:10], ", ") + fmt.Sprintf(" and %d more", len(ids)-10)
}

// Commit ends the migration on this node. On the source (after Export) it
// removes the port's flows and the exported conntrack entries, ends the
// drain and releases the VF with its settings restored. On the destination
// (after Reoffload) it only forgets what Abort would undo. Repeating it
// returns the same result.
func (m *Migrator) Commit(ctx context.Context, id string) (CommitResult, error) {
	s, err := m.begin(id)
	if err != nil {
		return CommitResult{}, fmt.Errorf("commit migration: %w", err)
	}
	defer s.mu.Unlock()
	r := s.r
	if r == nil {
		return CommitResult{}, fmt.Errorf("commit migration %s: %w", id, ErrUnknown)
	}
	switch {
	case r.Step == StepCommitted:
		return *r.Commit, nil
	case r.Step == StepAborted:
		return CommitResult{}, finished("commit", r)
	case r.Role == RoleSource && r.Step != StepExported:
		first := "Drain"
		if r.Step == StepDrained {
			first = "Export"
		}
		return CommitResult{}, expect("commit", r, first)
	case r.Role == RoleDestination && r.Step != StepReoffloaded:
		first := map[Step]string{StepNone: "Prepare", StepPrepared: "Import", StepImported: "Reoffload"}[r.Step]
		return CommitResult{}, expect("commit", r, first)
	}
	if r.Role == RoleDestination {
		r.Commit = &CommitResult{}
		r.Step = StepCommitted
		r.Conns = nil // no longer needed: no Abort after Commit
		return *r.Commit, m.save(r)
	}
	r.Committing = true
	if err := m.save(r); err != nil {
		return CommitResult{}, err
	}
	res, err := m.commitSource(ctx, r)
	if err != nil {
		return CommitResult{}, err
	}
	r.Commit, r.Step = &res, StepCommitted
	if err := m.save(r); err != nil {
		return CommitResult{}, err
	}
	m.log.Info("migration committed on source", "migration", r.ID, "port", r.Port,
		"flows_removed", res.FlowsRemoved, "conns_removed", res.ConnsRemoved)
	return res, nil
}

// Abort puts this node back as it was before the migration: on the source
// the port's flows return to hardware; on the destination the installed
// flows and conntrack entries are removed (replaced entries restored) and
// the reserved VF is released. Aborting an unknown migration records it as
// aborted, so a late Prepare or Drain of it fails. Repeating it returns
// the same result; after Commit it fails.
func (m *Migrator) Abort(ctx context.Context, id string) (AbortResult, error) {
	s, err := m.begin(id)
	if err != nil {
		return AbortResult{}, fmt.Errorf("abort migration: %w", err)
	}
	defer s.mu.Unlock()
	if s.r == nil {
		r := m.newRecord(id, 0)
		r.Step, r.Abort = StepAborted, &AbortResult{}
		if err := m.save(r); err != nil {
			return AbortResult{}, err
		}
		s.r = r
		return *r.Abort, nil
	}
	r := s.r
	switch r.Step {
	case StepAborted:
		return *r.Abort, nil
	case StepCommitted:
		return AbortResult{}, fmt.Errorf("abort migration %s: it was committed on this node and cannot be undone: %w", id, ErrStep)
	}
	if r.Committing {
		return AbortResult{}, fmt.Errorf("abort migration %s: Commit has started removing the port's flows on this node; repeat Commit to finish it: %w", id, ErrStep)
	}
	var res AbortResult
	if r.Role == RoleSource {
		res, err = m.abortSource(ctx, r)
	} else {
		res, err = m.abortDestination(ctx, r)
	}
	if err != nil {
		// What was undone is recorded; Abort can be repeated.
		if serr := m.save(r); serr != nil {
			m.log.Warn("save partly aborted migration", "migration", id, "err", serr)
		}
		return AbortResult{}, err
	}
	r.Abort, r.Step = &res, StepAborted
	if err := m.save(r); err != nil {
		return AbortResult{}, err
	}
	m.log.Info("migration aborted", "migration", id, "role", r.Role.String(), "port", r.Port)
	return res, nil
}
