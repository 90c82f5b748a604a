package flow

// Equal reports whether a and b describe the same rule.
func (f *Flow) Equal(o *Flow) bool {
	if f.ID != o.ID || f.Port != o.Port || f.Chain != o.Chain || f.Priority != o.Priority ||
		f.Policy != o.Policy || f.Match != o.Match || len(f.Actions) != len(o.Actions) {
		return false
	}
	for i := range f.Actions {
		if !f.Actions[i].Equal(&o.Actions[i]) {
			return false
		}
	}
	return true
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Equal reports whether two actions are the same.
func (a *Action) Equal(b *Action) bool {
	return a.Kind == b.Kind && a.Port == b.Port && a.Ingress == b.Ingress && a.VLAN == b.VLAN &&
		a.Chain == b.Chain && eqPtr(a.Encap, b.Encap) && eqPtr(a.CT, b.CT) &&
		eqPtr(a.Rewrite, b.Rewrite) && eqPtr(a.Police, b.Police)
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// Clone returns a deep copy.
func (f *Flow) Clone() *Flow {
	c := *f
	c.Actions = make([]Action, len(f.Actions))
	for i, a := range f.Actions {
		a.Encap = clonePtr(a.Encap)
		a.CT = clonePtr(a.CT)
		a.Rewrite = clonePtr(a.Rewrite)
		a.Police = clonePtr(a.Police)
		c.Actions[i] = a
	}
	return &c
}
