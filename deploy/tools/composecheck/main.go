// Command composecheck loads compose files with compose-go, the loader `docker compose`
// itself uses, and fails on any error: schema, interpolation, merge of override files,
// references to undefined networks, volumes, secrets or configs, and missing config files.
//
//	go run . -f ../../stack.yml [-f ../../stack.sim.yml] [-print]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var paths files
	flag.Var(&paths, "f", "compose file (repeatable, later files override earlier ones)")
	print := flag.Bool("print", false, "print the merged model as YAML")
	flag.Parse()
	if len(paths) == 0 {
		fmt.Fprintln(os.Stderr, "composecheck: at least one -f FILE is required")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithName("apimirror"),
		cli.WithOsEnv,
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	for _, name := range project.ConfigNames() {
		cfg := project.Configs[name]
		if _, err := os.Stat(cfg.File); err != nil {
			fail(fmt.Errorf("config %q: %w", name, err))
		}
	}
	if *print {
		out, err := project.MarshalYAML()
		if err != nil {
			fail(err)
		}
		fmt.Print(string(out))
	}
	fmt.Printf("ok: %d services\n", len(project.Services))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "composecheck:", err)
	os.Exit(1)
}
