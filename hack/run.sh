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

"$BIN/offloadd" --socket "$sock" --state-dir "$RUN_DIR/state" \
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
cat <<EOT

offloadd is serving on $sock (Ctrl-C stops it; installed flows stay).
Try, in another shell:
  $BIN/offloadctl --socket $sock flows list --state software
  $BIN/offloadctl --socket $sock flows explain -f hack/demo/tenant.yaml
  $BIN/offloadctl --socket $sock flows delete acl-ssh-vf0 acl-ssh-vf1   # frees hardware: spilled flows come back
  $BIN/offloadctl --socket $sock flows watch
  $BIN/offloadctl --socket $sock trace --port enp8s0f0v2 'tcp,src=10.0.0.12,dst=10.0.2.7,dport=443'
EOT
wait $daemon
