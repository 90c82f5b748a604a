#!/usr/bin/env bash
# make run: start offloadd on the emulated ConnectX-6 Dx, apply the demo
# tenant, print where every flow went and why, then keep serving.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-$PWD/.run}
BIN=${BIN:-bin}
sock=$RUN_DIR/offloadd.sock
mkdir -p "$RUN_DIR"
rm -rf "$RUN_DIR/state"   # a fresh demo each time

"$BIN/offloadd" --socket "$sock" --state-dir "$RUN_DIR/state" --audit-log "$RUN_DIR/audit.log" \
  --config hack/demo/offloadd.yaml 2> >(tee "$RUN_DIR/offloadd.log" >&2) &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT INT TERM

ctl() { "$BIN/offloadctl" --socket "$sock" "$@"; }
for _ in $(seq 100); do
  ctl node >/dev/null 2>&1 && break
  kill -0 $daemon 2>/dev/null || { echo "offloadd exited; see $RUN_DIR/offloadd.log" >&2; exit 1; }
  sleep 0.1
done

echo; echo "== The node"; ctl node
echo; echo "== Ports"; ctl ports
echo; echo "== Applying the demo tenant (hack/demo/tenant.yaml)"
ctl flows apply -f hack/demo/tenant.yaml || true
echo; echo "== Where every flow runs, and why"
ctl flows list
echo; echo "== A packet from VM 0 to the overlay: VXLAN-encapsulated in hardware"
ctl trace --port enp8s0f0v0 'tcp,src=10.0.0.10,dst=10.0.1.5,dport=80'
echo; echo "== SSH from VM 1: dropped by its ACL"
ctl trace --port enp8s0f0v1 'tcp,src=10.0.0.11,dst=10.0.1.5,dport=22'
echo; echo "== The web VM's stateful firewall (VM 4, conntrack zone 10): one TCP connection, packet by packet"
echo "   The +trk+est rules are in hardware, with their software copies (no skip flag): until the"
echo "   NIC has offloaded the connection, hardware's ct misses and software resumes at that action."
to_web='tcp,src=192.0.2.99,dst=10.0.0.14,sport=40000,dport=80'
from_web='tcp,src=10.0.0.14,dst=192.0.2.99,sport=80,dport=40000'
step() {
  echo; echo "-- $1"; shift
  ctl trace "$@"
}
step "SYN from the client (p0): new, committed in software" --port p0 "$to_web,flags=S"
step "SYN-ACK from VM 4: established, software copy of fw-out-est" --port enp8s0f0v4 "$from_web,flags=SA"
step "ACK from the client: established; the NIC offloads the connection" --port p0 "$to_web,flags=A"
step "request: hardware end to end" --port p0 "$to_web,flags=PA,payload=GET"
step "response: hardware end to end" --port enp8s0f0v4 "$from_web,flags=PA,payload=OK"
step "FIN from the client: the connection leaves the NIC, software handles it" --port p0 "$to_web,flags=FA"
echo; echo "== Counters per plane of the firewall flows"
ctl flows list --id-prefix fw-
cat <<EOT

offloadd is serving on $sock (Ctrl-C stops it; installed flows stay).
Its log is $RUN_DIR/offloadd.log, the audit log of every change $RUN_DIR/audit.log.
Try, in another shell:
  $BIN/offloadctl --socket $sock flows list --state software
  $BIN/offloadctl --socket $sock flows explain -f hack/demo/tenant.yaml
  $BIN/offloadctl --socket $sock flows delete acl-ssh-vf0 acl-ssh-vf1   # frees hardware: spilled flows come back
  $BIN/offloadctl --socket $sock flows watch
  $BIN/offloadctl --socket $sock trace --port enp8s0f0v2 'tcp,src=10.0.0.12,dst=10.0.2.7,dport=443'
EOT
wait $daemon
