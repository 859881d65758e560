package app

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeCommands runs every `bin/meshguard ...` command of the README's
// shell blocks in-process, from the repository root, so the README cannot drift
// from what the binary does: the Bookinfo quickstart must find the mistakes the
// example is built around, and the fixed version must be clean.
func TestReadmeCommands(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if strings.HasPrefix(line, "bin/meshguard ") && !strings.ContainsAny(line, "|<>$") {
			cmds = append(cmds, strings.Fields(line)[1:])
		}
	}
	if len(cmds) == 0 {
		t.Fatal("the README has no bin/meshguard commands")
	}
	t.Chdir(root)
	for _, args := range cmds {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), args, Streams{Out: &out, Err: &errb})
			switch {
			case strings.Contains(strings.Join(args, " "), "examples/bookinfo/fixed"):
				if code != ExitOK {
					t.Fatalf("the fixed example must audit clean, exit %d:\n%s%s", code, out.String(), errb.String())
				}
			case strings.Contains(strings.Join(args, " "), "examples/bookinfo/insecure"):
				if code != ExitFindings {
					t.Fatalf("the insecure example must fail, exit %d:\n%s%s", code, out.String(), errb.String())
				}
				for _, want := range []string{"MESH0001", "MESH0010", "MESH0020", "MESH0030", "MESH0110", "MESH0140", "MESH0150", "MESH0200", "MESH0210"} {
					if !strings.Contains(out.String(), want) {
						t.Errorf("the insecure example must show %s:\n%s", want, out.String())
					}
				}
			default:
				if code != ExitOK {
					t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
				}
			}
		})
	}
}
