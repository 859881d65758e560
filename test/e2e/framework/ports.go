package framework

import (
	"fmt"
	"net"
)

// FreeLoopbackPort returns a TCP port on 127.0.0.1 that was free when asked.
// The port is released before returning, so another process could take it in
// between; for tests on one machine that window is accepted.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
