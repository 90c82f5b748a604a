// Command crashcheck checks that offloadd never loses a change it
// acknowledged. It starts the real offloadd binary on the emulated
// backend with a state directory and a unix socket, drives ApplyFlows and
// DeleteFlows from several clients while keeping a journal of every
// acknowledged change (flow ID → generation and content, or deleted),
// kills the daemon with SIGKILL at a random moment, restarts it, and
// compares ListFlows with the journal: no acknowledged change lost, no
// flow listed twice, an atomic batch whose answer was lost applied all or
// nothing. Requests without an answer (in flight at the kill, or failed)
// may go either way.
//
// With --disk-full the state directory is a small tmpfs (needs root), so
// saves fail with ENOSPC part of the time. See docs/reliability.md.
//
// With --greedy it measures greedy clients instead: the daemon's heap
// while watchers that never read see every flow change, and single-flow
// ApplyFlows latency while clients list every flow in pages.
//
//	go run ./hack/crashcheck --greedy --flows 200000 --watchers 20 --listers 4
//
//	go run ./hack/crashcheck --rounds 50 --clients 4 --batch 8
package main
