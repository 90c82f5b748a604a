package offload

import "github.com/offloadd/offloadd/offload/flow"

// StoredFlow is one flow of persisted desired state.
type StoredFlow struct {
	Flow       *flow.Flow
	Generation uint64
}

// Store persists desired state so a restarted daemon knows its flows.
type Store interface {
	Save(flows []StoredFlow) error
	Delete(ids []string) error
	Load() ([]StoredFlow, error)
}
