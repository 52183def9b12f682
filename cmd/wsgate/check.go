package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/tools/check"
)

func init() { extraCommands = append(extraCommands, checkCmd) }

// checkCmd is `wsgate check URL`; the audit's exit status (2 on FAIL, 3 when
// a probe could not run) becomes the process's.
func checkCmd() *cobra.Command {
	c := check.NewCommand()
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		var ee *check.ExitError
		if errors.As(err, &ee) {
			return exitError(ee.Code)
		}
		return err
	}
	return c
}
