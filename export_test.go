package wsgate

import "github.com/wsgate/wsgate/internal/redact"

// WithRedactor makes the server log through r (tests inspect what it masks).
func WithRedactor(r *redact.Redactor) Option { return func(o *options) { o.redactor = r } }
