package hook

import "testing"

// FuzzDecodeReply: a backend's answer is untrusted input; decoding never
// panics, and what it accepts is a well-formed reply.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{`{"allow":true}`, `{"allow":false,"reason":"x"}`, `{"allow":true,"payload":{"a":[1,2]}}`,
		`{"allow":true,"tier":"vip","channels":{"sub":["a:*"],"pub":[]}}`, `{"allow":null}`, `[]`, `{"allow":true}{}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c ConnectReply
		if decodeReply(KindConnect, []byte(s), &c) == nil {
			_ = c.validate()
			if len(c.Reason) > MaxReasonLen {
				t.Fatalf("reason of %d bytes", len(c.Reason))
			}
		}
		var p PublishReply
		_ = decodeReply(KindPublish, []byte(s), &p)
		var sr SubscribeReply
		_ = decodeReply(KindSubscribe, []byte(s), &sr)
	})
}
