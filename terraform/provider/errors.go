package provider

import (
	"errors"
	"net/url"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/kvflow/kvflow"
)

// attributeOf names the attribute a kvflow error is about, among those the
// schema has; "" when it is about none of them. Server messages start with
// what they judge ("Key … is invalid", "TTL … must be positive", "Field
// 'description' is … long"), a namespace the server refuses is EFORBIDDEN
// and a key an increment cannot add to (another type) ECONFLICT.
func attributeOf(err error, has ...string) string {
	pick := func(name string) string {
		for _, h := range has {
			if h == name {
				return name
			}
		}
		return ""
	}
	msg := kvflow.ErrorMessage(err)
	switch kvflow.ErrorCode(err) {
	case kvflow.EFORBIDDEN:
		return pick("namespace")
	case kvflow.ENOTFOUND, kvflow.EEXPIRED, kvflow.ECONFLICT:
		return pick("key")
	case kvflow.ETOOLARGE:
		return pick("value")
	case kvflow.EINVALID:
		if rest, ok := strings.CutPrefix(msg, "Field '"); ok { // Field 'description' …, Field 'by' …
			name, _, _ := strings.Cut(rest, "'")
			return pick(name)
		}
		for _, p := range []struct{ prefix, attr string }{
			{"Namespace", "namespace"}, {"Key", "key"}, {"TTL", "ttl"}, {"Type", "type"},
			{"Value", "value"}, {"A NUMBER", "value"}, {"Cannot increment", "by"}, // the sum overflows
		} {
			if strings.HasPrefix(msg, p.prefix) {
				return pick(p.attr)
			}
		}
	}
	return ""
}

// unreachable reports whether err is a failure to reach the server at all
// (as opposed to an answer from it).
func unreachable(err error) bool {
	var ue *url.Error
	return kvflow.ErrorCode(err) == kvflow.EUNAVAILABLE && errors.As(err, &ue)
}

// addError reports err as a diagnostic: on the attribute it is about when
// there is one, with a hint on the provider's settings for unreachable
// servers and refused tokens.
func addError(diags *diag.Diagnostics, summary string, err error, has ...string) {
	msg := kvflow.ErrorMessage(err)
	switch {
	case unreachable(err):
		msg += " Check the provider's endpoint (or KVFLOW_SERVER) and that `kvflow server` is running."
	case kvflow.ErrorCode(err) == kvflow.EUNAUTHORIZED:
		msg += " Check the provider's token (or KVFLOW_API_TOKEN)."
	}
	if attr := attributeOf(err, has...); attr != "" {
		diags.AddAttributeError(path.Root(attr), summary, msg)
		return
	}
	diags.AddError(summary, msg)
}
