package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// TestAddError_ServerErrorsNameTheirAttribute sends bad requests to a real
// server, past the provider's own checks, and checks the diagnostic's path.
func TestAddError_ServerErrorsNameTheirAttribute(t *testing.T) {
	ts := startServer(t, "secret", "tf", "tf.*")
	ctx := context.Background()
	set := func(ns, key, value string, o client.SetOptions) func() error {
		return func() error { return ts.Client.Set(ctx, ns, key, value, o) }
	}
	for _, c := range []struct {
		name string
		call func() error
		want string // attribute; "" for none
		text string // in the detail
	}{
		{"invalid key", set("tf", "-bad", "x", client.SetOptions{}), "key", "Key \"-bad\" is invalid"},
		{"invalid namespace", set("TF", "k", "x", client.SetOptions{}), "namespace", "Namespace \"TF\" is invalid"},
		{"denied namespace", set("other", "k", "x", client.SetOptions{}), "namespace", "Access to namespace 'other' is not allowed"},
		{"value not of its type", set("tf", "k", "abc", client.SetOptions{Type: storage.NUMBER}), "value", "is not a valid NUMBER"},
		{"ttl not positive", set("tf", "k", "x", client.SetOptions{TTL: "PT0S"}), "ttl", "must be positive"},
		{"description too long", set("tf", "k", "x", client.SetOptions{Description: strings.Repeat("d", storage.MaxDescriptionLen+1)}),
			"description", "Field 'description' is 1001 characters long; the limit is 1000"},
		{"missing key", func() error { _, err := ts.Client.Detail(ctx, "tf", "missing"); return err }, "key", "No value found for key 'missing'"},
		{"wrong token", func() error {
			return client.NewClient(ts.URL, "wrong").Set(ctx, "tf", "k", "x", client.SetOptions{})
		}, "", "Check the provider's token"},
		{"unreachable", func() error {
			return client.NewClient(closedURL(t), "").Set(ctx, "tf", "k", "x", client.SetOptions{})
		}, "", "Check the provider's endpoint"},
	} {
		t.Run(c.name, func(t *testing.T) { wantAttributeError(t, c.call(), kvAttrs, c.want, c.text) })
	}
}

func TestAddError_IncrementErrorsNameTheirAttribute(t *testing.T) {
	ts := startServer(t, "")
	ctx := context.Background()
	for key, text := range map[string]string{"word": "hello", "max": "9223372036854775807"} {
		if err := ts.Client.Set(ctx, "tf", key, text, client.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	increment := func(key string) error {
		_, _, err := ts.Client.Increment(ctx, "tf", key, storage.Value{Type: storage.NUMBER, V: int64(1)}, "", "")
		return err
	}
	t.Run("another type", func(t *testing.T) {
		wantAttributeError(t, increment("word"), incrementAttrs, "key", "it holds a STRING, not a NUMBER")
	})
	t.Run("past 64 bits", func(t *testing.T) {
		wantAttributeError(t, increment("max"), incrementAttrs, "by", "overflows")
	})
}

// wantAttributeError checks that addError reports err on attribute want
// (none when ""), among has, with text in the detail.
func wantAttributeError(t *testing.T, err error, has []string, want, text string) {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded, want an error")
	}
	var diags diag.Diagnostics
	addError(&diags, "Cannot write", err, has...)
	if len(diags) != 1 {
		t.Fatalf("got %d diagnostics, want 1: %v", len(diags), diags)
	}
	d := diags[0]
	if !strings.Contains(d.Detail(), text) {
		t.Errorf("detail %q does not contain %q", d.Detail(), text)
	}
	wp, ok := d.(diag.DiagnosticWithPath)
	switch {
	case want == "" && ok:
		t.Errorf("diagnostic names attribute %s, want none", wp.Path())
	case want != "" && !ok:
		t.Errorf("diagnostic names no attribute, want %s (detail %q)", want, d.Detail())
	case want != "" && !wp.Path().Equal(path.Root(want)):
		t.Errorf("diagnostic names attribute %s, want %s", wp.Path(), want)
	}
}

func TestAttributeOf_OnlyAttributesTheSchemaHas(t *testing.T) {
	ts := startServer(t, "")
	_, err := ts.Client.Detail(context.Background(), "tf", "missing")
	if got := attributeOf(err, "namespace", "prefix"); got != "" {
		t.Errorf("attributeOf(not found, namespace, prefix) = %q, want none", got)
	}
	if got := attributeOf(err, "namespace", "key"); got != "key" {
		t.Errorf("attributeOf(not found, namespace, key) = %q, want key", got)
	}
}
