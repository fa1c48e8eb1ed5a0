package netguard_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/netguard"
)

func TestInternal_ClassifiesAddresses(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "127.9.9.9": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"10.0.0.1": "private", "172.16.0.1": "private", "172.31.255.255": "private", "192.168.1.1": "private", "fc00::1": "private", "fd12::1": "private",
		"100.64.0.1": "carrier-grade NAT", "100.127.255.255": "carrier-grade NAT",
		"0.0.0.0": "unspecified", "::": "unspecified", "0.1.2.3": "reserved", "255.255.255.255": "reserved",
		"224.0.0.1": "multicast", "ff02::1": "multicast",
		"192.0.2.2": "reserved", "198.51.100.7": "reserved", "203.0.113.1": "reserved", "198.19.0.1": "reserved", "192.0.0.8": "reserved",
		"2001:db8::1": "reserved", "64:ff9b::7f00:1": "loopback", "64:ff9b::a00:1": "private", "64:ff9b::808:808": "",
		"8.8.8.8": "", "172.32.0.1": "", "100.128.0.1": "", "2001:4860:4860::8888": "",
	} {
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := netguard.Internal(ip); got != want {
			t.Errorf("Internal(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestParse_AllowList(t *testing.T) {
	if _, err := netguard.Parse([]string{"10.0.0.0/8", "::1", "[::1]", "minio.internal", " 127.0.0.1 ", "*"}); err != nil {
		t.Fatal(err)
	}
	_, err := netguard.Parse([]string{"10.0.0.0/33", "no way", "ok.host"})
	if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), `"10.0.0.0/33" is not a CIDR range`) ||
		!strings.Contains(err.Error(), `"no way" is not an address, a CIDR range or a host name`) || strings.Contains(err.Error(), "ok.host") {
		t.Errorf("Parse = %v, want EINVALID naming each bad entry and only those", err)
	}
}
