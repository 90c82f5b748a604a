// Package tccorpus is the iproute2 equivalence corpus of the tc-flower
// codec: tc command lines (corpus.txt) paired with the same rules in
// offloadd's flow model. The codec's golden tests and the kernel tier's
// equivalence test (nic/linux) both use it. It is test data; nothing in
// the daemon imports it.
package tccorpus
