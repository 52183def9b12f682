package client_test

import (
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
