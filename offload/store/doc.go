// Package store persists the engine's desired state in a bbolt file, so a
// restarted daemon knows its flows and can adopt what the kernel still holds.
//
// Every record carries a CRC-32C over its key and body, and the file a
// summary (record count, XOR of the checksums) updated with every write;
// Open refuses empty files, damaged meta pages, short files and files that
// fail bbolt's page check, and no bbolt panic escapes. A damaged file is
// an error wrapping ErrDamaged, never fewer flows: restore would delete
// the rules of the missing ones. Check, Backup and Repair back the
// `offloadd state` commands. See docs/reliability.md.
package store
