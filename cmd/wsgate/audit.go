package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/observe/audit"
)

func init() { extraCommands = append(extraCommands, auditCmd) }

// auditCmd is `wsgate audit verify|keygen`: the offline side of the
// tamper-evident audit log (docs/audit.md).
func auditCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Verify a hash-chained audit log, or make its checkpoint key",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(auditVerifyCmd(), auditKeygenCmd())
	return c
}

func auditVerifyCmd() *cobra.Command {
	var o audit.VerifyOptions
	var pubFiles []string
	c := &cobra.Command{
		Use:   "verify [--pubkey FILE]… [--key-id ID] [--from-genesis] [--max-unsigned N] FILE|DIR|GLOB…",
		Short: "Check the hash chain and checkpoint signatures; report the first broken or missing record",
		Long: `verify reads audit files oldest first and reports the first record that was
edited, deleted, reordered or truncated, or whose checkpoint signature is bad,
as FILE:LINE. A rotated set (audit.log, audit.log.1, … or a directory holding
them, or a quoted glob) is put in rotation order, oldest first.

Exit status: 0 intact, 1 broken or missing records, 2 files or keys unreadable.`,
		Example: `  wsgate audit verify --pubkey audit.pub /var/log/wsgate/
  wsgate audit verify --pubkey audit.pub --from-genesis audit.log.3 audit.log.2 audit.log.1 audit.log`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range pubFiles {
				k, err := audit.LoadPublicKey(f)
				if err != nil {
					return failWith(2, err)
				}
				o.PublicKeys = append(o.PublicKeys, k)
			}
			o.LimitUnsigned = cmd.Flags().Changed("max-unsigned")
			files, err := audit.OrderFiles(args)
			if err != nil {
				return failWith(2, err)
			}
			rep, err := audit.Verify(files, o)
			if err != nil {
				return failWith(2, err)
			}
			printReport(cmd.OutOrStdout(), rep)
			if rep.Problem != nil {
				return failWith(1, errors.New("audit log broken (see FAIL above)"))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&pubFiles, "pubkey", nil, "Ed25519 public key (PEM or base64) that signs checkpoints, repeatable (chosen by key id); without one signatures are not checked")
	f.StringVar(&o.KeyID, "key-id", "", "require every checkpoint to name this key id")
	f.BoolVar(&o.FromGenesis, "from-genesis", false, "require the first file to start the chain (no older file missing)")
	f.Uint64Var(&o.MaxUnsigned, "max-unsigned", 0, "fail when more than N records follow the last checkpoint (0 for a set closed by rotation or shutdown); default: warn only")
	return c
}

func printReport(w io.Writer, r *audit.Report) {
	if r.Problem != nil {
		fmt.Fprintf(w, "FAIL %v\n", r.Problem)
		if r.Records > 0 {
			fmt.Fprintf(w, "     %d records read before the break (seq %d..%d)\n", r.Records, r.FirstSeq, r.LastSeq)
		}
		return
	}
	fmt.Fprintf(w, "OK %d records in %d file(s), seq %d..%d, last hash %s\n", r.Records, r.Files, r.FirstSeq, r.LastSeq, r.LastHash)
	if r.ContinuesFrom != "" {
		fmt.Fprintf(w, "note: the first file continues a chain from an older file not given (seq %d, hash %s)\n", r.FirstSeq-1, r.ContinuesFrom)
	}
	for _, e := range r.SkippedEmpty {
		fmt.Fprintf(w, "note: %s is empty\n", e)
	}
	switch {
	case r.Checkpoints == 0:
		fmt.Fprintln(w, "warning: no signed checkpoints: an attacker able to rewrite every file could rebuild the chain")
	case !r.SignaturesChecked():
		fmt.Fprintf(w, "warning: %d checkpoints found but signatures NOT checked (give --pubkey)\n", r.Checkpoints)
	default:
		fmt.Fprintf(w, "checkpoints: %d signatures verified, last covers seq %d (%s)\n", r.SignaturesVerified, r.LastSignedSeq, r.LastSignedFile)
	}
	if r.Checkpoints > 0 && r.UnsignedTail > 0 {
		fmt.Fprintf(w, "warning: the last %d records (after seq %d) are not yet covered by a checkpoint\n", r.UnsignedTail, r.LastSeq-r.UnsignedTail)
	}

}

// failWith returns err (main prints it) with exit status code.
func failWith(code int, err error) error { return codedError{err, exitError(code)} }

// codedError is an error main prints as itself and exits with code for.
type codedError struct {
	err  error
	code exitError
}

func (e codedError) Error() string   { return e.err.Error() }
func (e codedError) Unwrap() []error { return []error{e.err, e.code} }

func auditKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create an Ed25519 checkpoint key: FILE (private, 0600) and FILE.pub",
		Long: `keygen writes a new Ed25519 private key to FILE (PEM PKCS #8, mode 0600; set
audit.checkpoint_key_file to it) and its public key to FILE.pub (PEM; give it to
'wsgate audit verify --pubkey'), and prints the key id checkpoints will carry.
It never overwrites a file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			pder, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := writeNew(args[0], pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				return err
			}
			if err := writeNew(args[0]+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "key id %s\nprivate key %s (keep secret; audit.checkpoint_key_file)\npublic key  %s.pub (for wsgate audit verify --pubkey)\n",
				audit.KeyID(pub), args[0], args[0])
			return err
		},
	}
}

// writeNew creates name with mode and data, refusing to replace a file.
func writeNew(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("keygen: write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: close %s: %w", name, err)
	}
	return nil
}
