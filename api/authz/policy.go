package authz

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// Role is a set of RPCs (see Methods).
type Role string

// Roles. Each of reader, operator and admin includes the one before it;
// migration-peer stands alone and admin includes it too.
const (
	// RoleAny is no role: any caller with a trusted transport (health).
	RoleAny Role = ""
	// RoleReader reads: node, ports, flows (list, get, watch, explain),
	// VF pools, migrations, datapath counters.
	RoleReader Role = "reader"
	// RoleOperator also changes flows, allocates and releases VFs and
	// injects trace packets on the emulated NIC.
	RoleOperator Role = "operator"
	// RoleMigrationPeer may only hand over a migration bundle (ImportMigration).
	RoleMigrationPeer Role = "migration-peer"
	// RoleAdmin may call everything, including every migration step.
	RoleAdmin Role = "admin"
)

// covers reports whether r may call an RPC whose least role is min.
func (r Role) covers(min Role) bool {
	switch {
	case min == RoleAny, r == RoleAdmin:
		return true
	case r == RoleMigrationPeer || min == RoleMigrationPeer:
		return r == min
	case r == RoleOperator:
		return min == RoleReader || min == RoleOperator
	case r == RoleReader:
		return min == RoleReader
	}
	return false
}

func (r Role) valid() bool {
	switch r {
	case RoleReader, RoleOperator, RoleMigrationPeer, RoleAdmin:
		return true
	}
	return false
}

// Binding gives an identity roles.
type Binding struct {
	// Identity is whom it binds: "uid:N" or "gid:N" (unix socket peers), a
	// certificate's URI SAN ("spiffe://cluster.local/ns/net/sa/agent"),
	// "dns:NAME" or "cn:NAME" (certificates without a URI SAN), or
	// "anonymous" (plaintext TCP under --insecure-tcp).
	Identity string `json:"identity"`
	// Roles are reader, operator, migration-peer or admin.
	Roles []Role `json:"roles"`
	// IDPrefixes, when set, scope an operator's ApplyFlows and DeleteFlows
	// to flows whose ID starts with one of them (default: any flow). A
	// scoped operator is a reader for every other operator RPC.
	IDPrefixes []string `json:"idPrefixes,omitempty"`
	// Ports, when set, scope an operator's ApplyFlows and DeleteFlows to
	// flows whose ingress port is one of them (default: any port).
	Ports []string `json:"ports,omitempty"`
}

func (b Binding) scoped() bool { return len(b.IDPrefixes) > 0 || len(b.Ports) > 0 }

// Validate checks the identity's form and the role names.
func (b Binding) Validate() error {
	if err := validIdentity(b.Identity); err != nil {
		return err
	}
	if len(b.Roles) == 0 {
		return fmt.Errorf("identity %q: no roles", b.Identity)
	}
	for _, r := range b.Roles {
		if !r.valid() {
			return fmt.Errorf("identity %q: role %q is not reader, operator, migration-peer or admin", b.Identity, r)
		}
	}
	// A scope narrows the operator role; next to admin it would mean nothing.
	if b.scoped() && (!slices.Contains(b.Roles, RoleOperator) || slices.Contains(b.Roles, RoleAdmin)) {
		return fmt.Errorf("identity %q: idPrefixes and ports scope the operator role: give it operator and not admin", b.Identity)
	}
	return nil
}

func validIdentity(s string) error {
	for _, p := range []string{"uid:", "gid:"} {
		if n, ok := strings.CutPrefix(s, p); ok {
			if _, err := strconv.ParseUint(n, 10, 32); err != nil {
				return fmt.Errorf("identity %q: %s needs a number", s, p)
			}
			return nil
		}
	}
	switch {
	case s == Anonymous, strings.HasPrefix(s, "dns:") && len(s) > 4, strings.HasPrefix(s, "cn:") && len(s) > 3,
		strings.Contains(s, "://"):
		return nil
	}
	return fmt.Errorf("identity %q: want uid:N, gid:N, a URI (spiffe://…), dns:NAME, cn:NAME or anonymous", s)
}

// FlowBatch is an ApplyFlows request as the API's fast path decodes it
// (api.ApplyFlowsBatch): IDs and ingress ports in request order.
type FlowBatch interface {
	FlowIDs() []string
	FlowPorts() []string
}

// FlowPorts looks up the ingress port of existing flows, for port-scoped
// deletes; a missing flow is not in the map.
type FlowPorts func(ids []string) map[string]string

// Policy maps identities to bindings.
type Policy struct {
	bindings map[string][]Binding
	// flowPorts resolves the ports of flows a scoped operator deletes.
	flowPorts FlowPorts
}

// NewPolicy checks and indexes bindings. unixAdmins are uids that are
// admin on the unix socket whatever the bindings say (the daemon passes
// 0 and its own uid unless configured otherwise). flowPorts may be nil,
// and then port-scoped operators cannot delete.
func NewPolicy(bindings []Binding, unixAdmins []uint32, flowPorts FlowPorts) (*Policy, error) {
	p := &Policy{bindings: map[string][]Binding{}, flowPorts: flowPorts}
	for i, b := range bindings {
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("policy[%d]: %w", i, err)
		}
		p.bindings[b.Identity] = append(p.bindings[b.Identity], b)
	}
	for _, uid := range unixAdmins {
		id := "uid:" + strconv.FormatUint(uint64(uid), 10)
		p.bindings[id] = append(p.bindings[id], Binding{Identity: id, Roles: []Role{RoleAdmin}})
	}
	return p, nil
}

// Bindings are the bindings that apply to id.
func (p *Policy) Bindings(id Identity) []Binding {
	var out []Binding
	for _, pr := range id.Principals() {
		out = append(out, p.bindings[pr]...)
	}
	return out
}

// Roles lists id's roles, for the audit log.
func (p *Policy) Roles(id Identity) []string {
	var out []string
	for _, b := range p.Bindings(id) {
		for _, r := range b.Roles {
			if !slices.Contains(out, string(r)) {
				out = append(out, string(r))
			}
		}
	}
	slices.Sort(out)
	return out
}

// Denied is why a call was refused.
type Denied struct {
	Who    Identity
	Method string
	Reason string
}

func (d *Denied) Error() string {
	return fmt.Sprintf("%s may not call %s: %s", d.Who, d.Method, d.Reason)
}

// Authorize decides whether id may call method with req (req may be nil
// for streams, whose requests come later); the error is a *Denied.
func (p *Policy) Authorize(id Identity, method string, req any) error {
	rule, known := Methods[method]
	bs := p.Bindings(id)
	if !known {
		for _, b := range bs {
			if slices.Contains(b.Roles, RoleAdmin) {
				return nil
			}
		}
		return &Denied{Who: id, Method: method, Reason: "the method is in no role"}
	}
	if rule.Min == RoleAny {
		return nil
	}
	if len(bs) == 0 {
		return &Denied{Who: id, Method: method, Reason: "no role is bound to this identity"}
	}
	var scopeErr error
	for _, b := range bs {
		for _, r := range b.Roles {
			if !r.covers(rule.Min) {
				continue
			}
			// An operator's scope limits flow changes and rules out the
			// other operator RPCs; reads are unscoped.
			if r != RoleOperator || rule.Min != RoleOperator || !b.scoped() {
				return nil
			}
			err := p.inScope(b, method, req)
			if err == nil {
				return nil
			}
			scopeErr = err
		}
	}
	if scopeErr != nil {
		return &Denied{Who: id, Method: method, Reason: scopeErr.Error()}
	}
	return &Denied{Who: id, Method: method, Reason: fmt.Sprintf("needs role %s (has %s)", rule.Min, strings.Join(p.Roles(id), ", "))}
}

// inScope checks a scoped operator's flow change.
func (p *Policy) inScope(b Binding, method string, req any) error {
	switch r := req.(type) {
	case *v1.ApplyFlowsRequest:
		for i, f := range r.GetFlows() {
			if err := b.allowsFlow(f.GetId(), f.GetPort(), true); err != nil {
				return fmt.Errorf("flows[%d]: %w", i, err)
			}
		}
		return nil
	case FlowBatch:
		ports := r.FlowPorts()
		for i, id := range r.FlowIDs() {
			if err := b.allowsFlow(id, ports[i], true); err != nil {
				return fmt.Errorf("flows[%d]: %w", i, err)
			}
		}
		return nil
	case *v1.DeleteFlowsRequest:
		var ports map[string]string
		if len(b.Ports) > 0 {
			if p.flowPorts == nil {
				return fmt.Errorf("port-scoped deletes are not supported here")
			}
			ports = p.flowPorts(r.GetIds())
		}
		for i, id := range r.GetIds() {
			// A flow that does not exist is on no port: deleting it changes
			// nothing, so only the ID prefix matters.
			port, found := ports[id]
			if err := b.allowsFlow(id, port, found); err != nil {
				return fmt.Errorf("ids[%d]: %w", i, err)
			}
		}
		return nil
	}
	return fmt.Errorf("the operator role is scoped (%s) and %s changes no flows", b.scope(), method)
}

// allowsFlow checks one flow against the scope; its port is checked when
// the flow has one (hasPort).
func (b Binding) allowsFlow(id, port string, hasPort bool) error {
	if len(b.IDPrefixes) > 0 && !slices.ContainsFunc(b.IDPrefixes, func(p string) bool { return strings.HasPrefix(id, p) }) {
		return fmt.Errorf("flow %q is outside the operator's scope (%s)", id, b.scope())
	}
	if len(b.Ports) > 0 && hasPort && !slices.Contains(b.Ports, port) {
		return fmt.Errorf("flow %q on port %q is outside the operator's scope (%s)", id, port, b.scope())
	}
	return nil
}

func (b Binding) scope() string {
	var parts []string
	if len(b.IDPrefixes) > 0 {
		parts = append(parts, "id prefixes "+strings.Join(b.IDPrefixes, ","))
	}
	if len(b.Ports) > 0 {
		parts = append(parts, "ports "+strings.Join(b.Ports, ","))
	}
	return strings.Join(parts, "; ")
}
