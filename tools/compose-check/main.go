// compose-check validates the container deployment without a Docker engine:
//
//   - compose.yaml is loaded with compose-go, the library `docker compose`
//     itself uses: the compose specification's JSON schema, interpolation,
//     references between services, volumes, secrets and dependencies;
//   - every Dockerfile stage is parsed and linted with BuildKit's Dockerfile
//     frontend and its linter (the rules of `docker build --check`), and
//     Interlock's own rules are applied to runtime stages: a non-root USER
//     and a HEALTHCHECK.
//
// Usage (from the repository root): compose-check compose.yaml Dockerfile
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: compose-check COMPOSE_FILE DOCKERFILE")
		os.Exit(2)
	}
	problems := checkCompose(os.Args[1])
	problems = append(problems, checkDockerfile(os.Args[2])...)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "problem:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

func checkCompose(path string) []string {
	opts, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithWorkingDirectory("."),
		cli.WithOsEnv,
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return []string{err.Error()}
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	var problems []string
	for name, svc := range project.Services {
		if svc.Image == "" && svc.Build == nil {
			problems = append(problems, fmt.Sprintf("%s: service %s has neither image nor build", path, name))
		}
	}
	fmt.Printf("%s: valid (%d services, %d volumes, %d secrets)\n", path, len(project.Services), len(project.Volumes), len(project.Secrets))
	return problems
}

func checkDockerfile(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	var problems []string
	lint := linter.New(&linter.Config{
		Warn: func(rule, description, url, msg string, location []parser.Range) {
			line := 0
			if len(location) > 0 {
				line = location[0].Start.Line
			}
			problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", path, line, rule, msg))
		},
	})
	stages, _, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		return append(problems, fmt.Sprintf("%s: %v", path, err))
	}
	for _, stage := range stages {
		if stage.Name != "runtime" {
			continue
		}
		var user, health bool
		for _, cmd := range stage.Commands {
			switch c := cmd.(type) {
			case *instructions.UserCommand:
				user = !strings.HasPrefix(c.User, "root") && !strings.HasPrefix(c.User, "0")
			case *instructions.HealthCheckCommand:
				health = true
			}
		}
		if !user {
			problems = append(problems, fmt.Sprintf("%s: stage %s does not switch to a non-root USER", path, stage.Name))
		}
		if !health {
			problems = append(problems, fmt.Sprintf("%s: stage %s has no HEALTHCHECK", path, stage.Name))
		}
	}
	fmt.Printf("%s: %d stages parsed and linted\n", path, len(stages))
	return problems
}
