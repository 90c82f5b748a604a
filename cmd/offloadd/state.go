package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/offloadd/offloadd/offload/store"
)

// stateUsage is the state subcommands' part of offloadd --help.
const stateUsage = `  offloadd state check DIR|FILE     check a state file (or DIR/state.db) record by record; exit 1 when damaged
  offloadd state backup SRC DST     copy a state file consistently (one read transaction), then check the copy
  offloadd state repair FILE|DIR    write a new state file with the good records, list the dropped ones,
                                    keep the original as FILE.damaged-<time>
Run them with the daemon stopped: it holds the state file's lock.
`

// errDamaged makes offloadd exit non-zero after a report of damage.
var errDamaged = errors.New("state damaged")

// runState runs `offloadd state ...`, printing its report to out.
func runState(args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("state: need a command: check, backup or repair\n%s", stateUsage)
	}
	want := map[string]int{"check": 1, "backup": 2, "repair": 1}
	n, ok := want[args[0]]
	if !ok || len(args)-1 != n {
		return fmt.Errorf("state: usage:\n%s", stateUsage)
	}
	switch args[0] {
	case "check":
		rep, err := store.Check(args[1])
		if err != nil {
			return fmt.Errorf("state check: %w", err)
		}
		fmt.Fprintf(out, "%s: %d records ok (%d without checksum, from an older release), %d damaged\n",
			args[1], len(rep.Flows), rep.Legacy, len(rep.Damaged))
		printDamage(out, rep.Damaged, rep.SummaryErr)
		if !rep.OK() {
			return fmt.Errorf("state check %s: %w", args[1], errDamaged)
		}
	case "backup":
		rep, err := store.Backup(args[1], args[2])
		if err != nil {
			if rep != nil {
				printDamage(out, rep.Damaged, rep.SummaryErr)
			}
			return fmt.Errorf("state backup: %w", err)
		}
		fmt.Fprintf(out, "backed up %d flows from %s to %s\n", len(rep.Flows), args[1], args[2])
	case "repair":
		res, err := store.Repair(args[1], time.Now())
		if err != nil {
			return fmt.Errorf("state repair: %w", err)
		}
		if res.Original == "" {
			fmt.Fprintf(out, "%s: %d records ok, nothing to repair\n", args[1], res.Kept)
			return nil
		}
		fmt.Fprintf(out, "%s: kept %d records, dropped %d\n", args[1], res.Kept, len(res.Dropped))
		printDamage(out, res.Dropped, res.SummaryErr)
		if res.Unread != nil {
			fmt.Fprintf(out, "the walk stopped at an unreadable page, records after it are lost: %v\n", res.Unread)
		}
		fmt.Fprintf(out, "the original is kept as %s\n", res.Original)
	}
	return nil
}

func printDamage(out io.Writer, damaged []store.Damaged, summaryErr error) {
	for _, d := range damaged {
		fmt.Fprintf(out, "damaged flow %q: %v\n", d.Key, d.Err)
	}
	if summaryErr != nil {
		fmt.Fprintf(out, "summary: %v\n", summaryErr)
	}
}
