// Command zkprom makes Apache ZooKeeper and Prometheus work together: it
// exports ZooKeeper's metrics, discovers targets registered in ZooKeeper,
// keeps Prometheus configuration in ZooKeeper and coordinates a fleet of
// Prometheus servers through it.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
)

// command is one subcommand: it registers its flags on the app and runs
// when chosen.
type command interface {
	run(logger *slog.Logger) int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	app.root.Writer(stderr)
	app.root.ErrorWriter(stderr)
	selected, err := app.root.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "zkprom: %v (see zkprom --help)\n", err)
		return 2
	}
	cmd, ok := app.commands[selected]
	if !ok {
		fmt.Fprintf(stderr, "zkprom: unknown command %q\n", selected)
		return 2
	}
	logger := promslog.New(app.logConfig)
	return cmd.run(logger)
}

// failed prints a command's error as a plain message for a person on w
// (stderr) and returns the exit code 1.
func failed(w io.Writer, command string, err error) int {
	fmt.Fprintf(w, "zkprom %s: %v\n", command, err)
	return 1
}

// signalContext ends on SIGINT and SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// gcForLongLivedHeap sets the garbage collector's target to 75 % (Go's
// default is 100 %) unless GOGC is set, as Prometheus does since 2.53:
// sd and the agent hold their targets for hours, so most of their heap
// is long-lived and a lower target saves memory for little CPU.
func gcForLongLivedHeap() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(75)
	}
}

// checkFailed prints a --config.check failure as a plain message on w
// and returns the exit code 1.
func checkFailed(w io.Writer, command string, err error) int {
	fmt.Fprintf(w, "zkprom %s: configuration check failed: %v\n", command, err)
	return 1
}

// badConfig reports a configuration that does not load: with
// --config.check (check) as a plain message on w, else in the log; it
// returns the exit code 1.
func badConfig(check bool, w io.Writer, command string, logger *slog.Logger, err error) int {
	if check {
		return checkFailed(w, command, err)
	}
	logger.Error("invalid configuration", "err", err)
	return 1
}

type app struct {
	root      *kingpin.Application
	commands  map[string]command
	logConfig *promslog.Config
}

// newApp builds the whole command line: every subcommand with its flags.
// Commands write their output to stdout and their plain messages for a
// person to stderr (logs go through the logger).
func newApp(stdout, stderr io.Writer) *app {
	a := &app{
		root:      kingpin.New("zkprom", "Apache ZooKeeper and Prometheus, working together."),
		commands:  map[string]command{},
		logConfig: &promslog.Config{},
	}
	a.root.HelpFlag.Short('h')
	a.root.Version(version.Print("zkprom"))
	a.root.UsageWriter(stdout)
	promslogflag.AddFlags(a.root, a.logConfig)
	a.add("version", newVersionCommand(a.root, stdout))
	newConfigCommands(a.root, stdout, stderr).register(a)
	a.add("agent", newAgentCommand(a.root))
	a.add("shards", newShardsCommand(a.root, stdout, stderr))
	a.add("exporter", newExporterCommand(a.root, stdout, stderr))
	a.add("sd", newSDCommand(a.root, stdout, stderr))
	a.add("register", newRegisterCommand(a.root))
	return a
}

func (a *app) add(name string, c command) { a.commands[name] = c }

type versionCommand struct{ out io.Writer }

func newVersionCommand(app *kingpin.Application, out io.Writer) *versionCommand {
	app.Command("version", "Print the version, revision and Go version.")
	return &versionCommand{out: out}
}

func (c *versionCommand) run(*slog.Logger) int {
	fmt.Fprintln(c.out, version.Print("zkprom"))
	return 0
}
