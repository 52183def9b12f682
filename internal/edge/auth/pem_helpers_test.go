package auth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
)

func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func x509MarshalPKCS8(key any) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(key) }

func x509MarshalPKCS1(pub *rsa.PublicKey) []byte { return x509.MarshalPKCS1PublicKey(pub) }

func writeFile(name, data string) error { return os.WriteFile(name, []byte(data), 0o600) }
