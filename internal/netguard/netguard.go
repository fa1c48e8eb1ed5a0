// Package netguard keeps tasks that fetch URLs (Download) away from the
// machine's own network: an HTTP client whose every connection, redirects
// included, is checked against the address it actually dials, after DNS
// resolution, so a name that resolves (or re-resolves) to 127.0.0.1 is
// refused as 127.0.0.1 is.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/kvflow/kvflow"
)

// Allow lists the addresses a client may dial although they are internal:
// CIDR ranges, single addresses and host names (any address such a name
// resolves to is allowed). The zero Allow allows no internal address.
type Allow struct {
	all   bool
	nets  []netip.Prefix
	hosts map[string]bool
}

// Parse reads allow-list entries: "10.1.0.0/16", "127.0.0.1", "::1",
// "minio.internal", or "*" for every address. An entry that is none of
// these is EINVALID, named.
func Parse(entries []string) (Allow, error) {
	var a Allow
	var bad []string
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case e == "*":
			a.all = true
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%q is not a CIDR range such as 10.0.0.0/8", e))
				continue
			}
			a.nets = append(a.nets, p.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
				a.nets = append(a.nets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if !validHost(e) {
				bad = append(bad, fmt.Sprintf("%q is not an address, a CIDR range or a host name", e))
				continue
			}
			if a.hosts == nil {
				a.hosts = map[string]bool{}
			}
			a.hosts[strings.ToLower(strings.TrimSuffix(e, "."))] = true
		}
	}
	if len(bad) > 0 {
		return Allow{}, kvflow.Errorf(kvflow.EINVALID, "Download allow-list: %s.", strings.Join(bad, "; "))
	}
	return a, nil
}

// MustParse is Parse for tests and constants: it panics on a bad entry.
func MustParse(entries ...string) Allow {
	a, err := Parse(entries)
	if err != nil {
		panic(err)
	}
	return a
}

func validHost(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// cgnat is the carrier-grade NAT range (RFC 6598), often internal.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// reserved are the special-purpose ranges that IANA's registries mark not
// globally reachable and the cases of Internal do not cover: documentation,
// benchmarking, IETF protocol assignments, discard.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("100::/64"), netip.MustParsePrefix("64:ff9b:1::/48"),
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4
// address in their last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Internal names the kind of an address a task may not reach by default, or
// returns "" for a public one.
func Internal(ip netip.Addr) string {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		return Internal(netip.AddrFrom4([4]byte(b[12:])))
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return "reserved"
		}
	}
	switch {
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	case cgnat.Contains(ip):
		return "carrier-grade NAT"
	case ip.IsMulticast():
		return "multicast"
	case ip.Is4() && (ip.As4()[0] == 0 || ip.As4()[0] >= 240):
		return "reserved" // 0.0.0.0/8 reaches this host; 240/4 and broadcast
	}
	return ""
}

// check refuses a dial of ip (reached through host) unless it is public or
// allowed. The error is EFORBIDDEN, naming the host and the address.
func (a Allow) check(host string, ip netip.Addr) error {
	kind := Internal(ip)
	if kind == "" || a.all || a.hosts[strings.ToLower(strings.TrimSuffix(host, "."))] {
		return nil
	}
	for _, p := range a.nets {
		if p.Contains(ip.Unmap()) {
			return nil
		}
	}
	article := "a"
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		article = "an"
	}
	what := fmt.Sprintf("host '%s' resolves to %s, %s %s address", host, ip.Unmap(), article, kind)
	if h, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && h.Unmap() == ip.Unmap() {
		what = fmt.Sprintf("address %s is %s %s address", ip.Unmap(), article, kind)
	}
	return kvflow.Errorf(kvflow.EFORBIDDEN, "%s, which tasks may not reach unless the configuration allows it (download.allow or KVFLOW_DOWNLOAD_ALLOW: a CIDR range, an address or a host name)", what)
}

// Client returns an HTTP client for tasks: it follows redirects, uses no
// proxy (a proxy would dial in its stead), and refuses to connect to an
// internal address a allows not. The check runs on the address being
// dialed, so DNS answers and redirects cannot get around it.
func Client(a Allow) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = a.DialContext
	return &http.Client{Transport: t}
}

// DialContext dials like a net.Dialer whose Control hook refuses internal
// addresses that a does not allow.
func (a Allow) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	d := net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return kvflow.Errorf(kvflow.EFORBIDDEN, "host '%s': cannot check the address %q it resolves to", host, address)
			}
			return a.check(host, ap.Addr())
		},
	}
	return d.DialContext(ctx, network, addr)
}
