package bundle

import (
	"fmt"
	"sort"
	"strings"
)

// maxDiffCells bounds the work of one file's line diff.
const maxDiffCells = 25_000_000

// UnifiedDiff returns a unified diff (3 lines of context) of every file
// that differs between a and b, with secrets masked unless showSecrets.
func UnifiedDiff(a, b *Bundle, nameA, nameB string, showSecrets bool) string {
	names := map[string]bool{}
	for n := range a.Files {
		names[n] = true
	}
	for n := range b.Files {
		names[n] = true
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out strings.Builder
	for _, n := range sorted {
		da, inA := a.Files[n]
		db, inB := b.Files[n]
		if inA && inB && string(da) == string(db) {
			continue
		}
		ta, tb := string(da), string(db)
		if !showSecrets {
			ta, tb = MaskSecrets(ta), MaskSecrets(tb)
		}
		fa, fb := nameA+"/"+n, nameB+"/"+n
		if !inA {
			fa = "/dev/null"
		}
		if !inB {
			fb = "/dev/null"
		}
		out.WriteString(fileDiff(fa, fb, ta, tb))
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	l := strings.SplitAfter(s, "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

func fileDiff(na, nb, a, b string) string {
	la, lb := splitLines(a), splitLines(b)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", na, nb)
	if len(la)*len(lb) > maxDiffCells {
		fmt.Fprintf(&out, "@@ files differ (%d and %d lines: too large for a line diff) @@\n", len(la), len(lb))
		return out.String()
	}
	// Longest common subsequence table, from the end.
	n, m := len(la), len(lb)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if la[i] == lb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
		ai   int
		bi   int
	}
	var lines []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && la[i] == lb[j]:
			lines = append(lines, line{' ', la[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', la[i], i, j})
			i++
		default:
			lines = append(lines, line{'+', lb[j], i, j})
			j++
		}
	}
	const ctx = 3
	for k := 0; k < len(lines); {
		if lines[k].op == ' ' {
			k++
			continue
		}
		start := max(0, k-ctx)
		end := k
		for end < len(lines) {
			if lines[end].op != ' ' {
				end++
				continue
			}
			run := end
			for run < len(lines) && lines[run].op == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(lines) {
				end = min(end+ctx, len(lines))
				break
			}
			end = run
		}
		var ca, cb int
		for _, l := range lines[start:end] {
			if l.op != '+' {
				ca++
			}
			if l.op != '-' {
				cb++
			}
		}
		sa, sb := lines[start].ai+1, lines[start].bi+1
		if ca == 0 {
			sa--
		}
		if cb == 0 {
			sb--
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", sa, ca, sb, cb)
		for _, l := range lines[start:end] {
			out.WriteByte(l.op)
			out.WriteString(l.text)
			if !strings.HasSuffix(l.text, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		k = end
	}
	return out.String()
}
