package client_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/client"
)

func ExampleSigner_Seal() {
	// kid and key come from the ticket/token endpoint: {"alg":"HS256","kid":…,"key":…}.
	kid, key, err := client.ParseHMACKey([]byte(`{"alg":"HS256","kid":"k2026-01","key":"m_BCM2cPZ95jM8MsTxcE_EGZI44KBifyHyaRPH3UZKQ"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := client.NewHMACSigner(kid, key, "user:alice@example.com", nil)
	s.Bind("c_01JH8XK2Q9") // conn_id from the server's welcome message
	frame, _ := s.Seal([]byte(`{"type":"chat.send","text":"hi"}`))
	fmt.Println(len(frame) > 0)
	// Output: true
}

func ExampleDial() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "wss://wsgate.example.com/ws", &client.DialOptions{
		// Called before every connection attempt and before the token expires.
		Token: func(ctx context.Context) (string, error) { return fetchToken(ctx) },
	})
	if err != nil {
		var he *client.HandshakeError
		if errors.As(err, &he) && he.Terminal() {
			fmt.Println("refused:", he.Status, he.Code) // 401/403: fix the credential, do not retry
		}
		return
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "chat:lobby", &client.SubscribeOptions{
		OnMessage:        func(m client.Message) { fmt.Println(m.Offset, string(m.Payload)) },
		OnRecoveryFailed: func(rf client.RecoveryFailed) { fmt.Println("gap: reload state; live from", rf.Position) },
	})
	if err != nil {
		return
	}
	if _, err := sub.Publish(ctx, map[string]string{"text": "hi"}); err != nil {
		var se *client.ServerError
		if errors.As(err, &se) {
			fmt.Println("refused:", se.Code) // e.g. permission_denied
		}
	}
}

func fetchToken(context.Context) (string, error) { return "…", nil }
