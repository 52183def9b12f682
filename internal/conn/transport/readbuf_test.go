package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = r.c.Close() })
	return client, r.c
}

// The pooled reader returns the byte stream exactly, whatever the read sizes,
// holds a buffer only while bytes it read wait to be taken, and reports EOF.
func TestPooledReaderStream(t *testing.T) {
	client, server := tcpPair(t)
	pool := newReadPool(64)
	r := newPooledReader(&wireConn{raw: server}, pool)
	if r == nil {
		t.Fatal("no pooled reader for a TCP connection")
	}
	want := make([]byte, 10000)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		for off := 0; off < len(want); off += 333 {
			_, _ = client.Write(want[off:min(off+333, len(want))])
			time.Sleep(time.Millisecond)
		}
		_ = client.(*net.TCPConn).CloseWrite()
	}()
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	sizes := []int{2, 4, 16, 100, 64, 1, 200}
	for i := 0; ; i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := r.Read(p)
		got = append(got, p[:n]...)
		if r.buf == nil && r.pos != r.end && n > 0 {
			t.Fatal("inconsistent buffer state")
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stream differs: got %d bytes, want %d", len(got), len(want))
	}
	if r.buf != nil {
		t.Fatal("buffer still held after the stream was consumed")
	}
}

// While the peer sends nothing the reader waits without a buffer, and the
// socket's read deadline ends the wait with a timeout error.
func TestPooledReaderIdleHoldsNoBuffer(t *testing.T) {
	client, server := tcpPair(t)
	r := newPooledReader(&wireConn{raw: server}, newReadPool(4096))
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 16)
	if n, err := r.Read(p); err != nil || string(p[:n]) != "abc" {
		t.Fatalf("read %q, %v", p[:n], err)
	}
	if r.buf != nil {
		t.Fatal("buffer held after all bytes were taken")
	}
	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := r.Read(p)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if r.buf != nil {
		t.Fatal("buffer held by an idle reader")
	}
}

// Other connections (TLS, pipes) read through their own buffers.
func TestPooledReaderOnlyForTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if newPooledReader(&wireConn{raw: a}, newReadPool(64)) != nil {
		t.Fatal("pooled reader for a pipe")
	}
	if newPooledReader(&wireConn{raw: a}, nil) != nil {
		t.Fatal("pooled reader without a pool")
	}
}
