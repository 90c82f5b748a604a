package tcsyntax

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Error is a parse error at a token of the input.
type Error struct {
	Line, Col int    // 1-based; Col counts bytes
	Token     string // the offending token; "" at the end of a rule
	Msg       string
}

func (e *Error) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("line %d col %d: %s", e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("line %d col %d: %q: %s", e.Line, e.Col, e.Token, e.Msg)
}

// ErrorList is every rule's first error, in input order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// token is one word of a rule with where it starts.
type token struct {
	s         string
	line, col int
}

// logical is one rule: its tokens (continuations joined, comments cut)
// and the id of a "# id:" comment before it.
type logical struct {
	toks   []token
	id     string
	idLine int
}

// maxLine bounds one physical line.
const maxLine = 1 << 20

// split reads r into rules. A "# id: NAME" comment names the next rule.
func split(r io.Reader) ([]logical, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		out     []logical
		cur     logical
		cont    bool
		id      string
		idLine  int
		lineNo  int
		errList ErrorList
	)
	flush := func() {
		if len(cur.toks) > 0 {
			cur.id, cur.idLine = id, idLine
			id, idLine = "", 0
			out = append(out, cur)
		}
		cur = logical{}
	}
	for sc.Scan() {
		lineNo++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if !cont && strings.HasPrefix(trimmed, "#") {
			rest := strings.TrimSpace(trimmed[1:])
			if v, ok := strings.CutPrefix(rest, "id:"); ok {
				v = strings.TrimSpace(v)
				switch {
				case v == "" || strings.ContainsAny(v, " \t"):
					errList = append(errList, &Error{Line: lineNo, Col: strings.Index(text, "#") + 1, Token: trimmed, Msg: `want "# id: NAME" with one word`})
				case id != "":
					errList = append(errList, &Error{Line: lineNo, Col: strings.Index(text, "#") + 1, Token: trimmed, Msg: fmt.Sprintf("a second id comment; line %d names no rule", idLine)})
				default:
					id, idLine = v, lineNo
				}
			}
			continue
		}
		body := strings.TrimRight(text, " \t\r")
		cont = strings.HasSuffix(body, `\`)
		if cont {
			body = body[:len(body)-1]
		}
		for i := 0; i < len(body); {
			if body[i] == ' ' || body[i] == '\t' {
				i++
				continue
			}
			if body[i] == '#' {
				break
			}
			j := i
			for j < len(body) && body[j] != ' ' && body[j] != '\t' {
				j++
			}
			cur.toks = append(cur.toks, token{s: body[i:j], line: lineNo, col: i + 1})
			i = j
		}
		if !cont {
			flush()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	flush()
	if id != "" {
		errList = append(errList, &Error{Line: idLine, Col: 1, Msg: fmt.Sprintf("id %q names no rule", id)})
	}
	if len(errList) > 0 {
		return out, errList
	}
	return out, nil
}

// derivedID is "tc-" and 12 hex digits of the SHA-256 of the rule's
// tokens joined by single spaces, without a leading "tc".
func derivedID(toks []token) string {
	if len(toks) > 0 && toks[0].s == "tc" {
		toks = toks[1:]
	}
	h := sha256.New()
	for i, t := range toks {
		if i > 0 {
			h.Write([]byte{' '})
		}
		h.Write([]byte(t.s))
	}
	return "tc-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// suggest returns the word of words nearest to s, if it is near enough to
// be a typo.
func suggest(s string, words []string) string {
	best, bestD := "", 3 // at most two edits, and fewer than half the word
	for _, w := range words {
		if d := distance(s, w); d < bestD && 2*d <= len(s) {
			best, bestD = w, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
