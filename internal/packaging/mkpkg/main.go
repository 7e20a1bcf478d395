// Command mkpkg builds zkprom's Debian package or release tarball from a
// built binary (make package, make tarball).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/zkprom/zkprom/internal/packaging"
)

func main() {
	os.Exit(run())
}

func run() int {
	o := packaging.Options{GOARCH: runtime.GOARCH, Date: time.Now()}
	flag.StringVar(&o.Binary, "zkprom", "bin/zkprom", "the built zkprom binary")
	flag.StringVar(&o.Version, "version", "", "version, as git describe --tags --always --dirty prints it")
	flag.StringVar(&o.Out, "out", "dist", "directory the package or tarball is written to")
	flag.StringVar(&o.Repo, "repo", ".", "the repository's top directory")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: mkpkg [flags] deb|tarball\n\nSOURCE_DATE_EPOCH (seconds) sets the date of the changelog and of the files.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkpkg: SOURCE_DATE_EPOCH=%q is not a number of seconds\n", s)
			return 2
		}
		o.Date = time.Unix(sec, 0)
	}
	build := map[string]func(packaging.Options) (string, error){"deb": packaging.BuildDeb, "tarball": packaging.BuildTarball}[flag.Arg(0)]
	if flag.NArg() != 1 || build == nil || o.Version == "" {
		flag.Usage()
		return 2
	}
	out, err := build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkpkg %s: %v\n", flag.Arg(0), err)
		return 1
	}
	fmt.Println(out)
	return 0
}
