// Package provider is kvflow's Terraform provider: the kvflow_kv and
// kvflow_kv_increment resources and the kvflow_kv and kvflow_kv_keys data
// sources, talking to `kvflow server` through client.Client.
package provider

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
)

// Address is the provider's registry address.
const Address = "registry.terraform.io/kvflow/kvflow"

// DefaultEndpoint is the server used when neither the configuration nor
// KVFLOW_SERVER (or KVFLOW_ENDPOINT) names one.
const DefaultEndpoint = "http://127.0.0.1:8080"

// Environment variables read when the provider block leaves a setting out.
const (
	EnvServer   = "KVFLOW_SERVER"   // the same variable as the CLI's --server
	EnvEndpoint = "KVFLOW_ENDPOINT" // read when KVFLOW_SERVER is unset
	EnvToken    = "KVFLOW_API_TOKEN"
)

// requestTimeout bounds each call to the server; reachTimeout the check
// made when the provider is configured.
const (
	requestTimeout = 2 * time.Minute
	reachTimeout   = 10 * time.Second
)

// New returns a constructor of the provider for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &kvflowProvider{version: version} }
}

type kvflowProvider struct{ version string }

type providerModel struct {
	Endpoint types.String `tfsdk:"endpoint"`
	Token    types.String `tfsdk:"token"`
}

func (p *kvflowProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "kvflow"
	resp.Version = p.version
}

func (p *kvflowProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Manages the typed key-value pairs of a kvflow server.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				Optional:    true,
				Description: "URL of the kvflow server (http://host:port, or host:port). Default: $" + EnvServer + " (or $" + EnvEndpoint + "), else " + DefaultEndpoint + ".",
			},
			"token": schema.StringAttribute{
				Optional:    true,
				Sensitive:   true,
				Description: "API token, sent as a bearer token. Default: $" + EnvToken + ".",
			},
		},
	}
}

func (p *kvflowProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.Endpoint.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Unknown kvflow endpoint",
			"The endpoint is not known until apply; the provider needs it to plan. Set it to a value known at plan time.")
	}
	if cfg.Token.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "Unknown kvflow token",
			"The token is not known until apply; the provider needs it to plan. Set it to a value known at plan time.")
	}
	if resp.Diagnostics.HasError() {
		return
	}

	endpoint, from := cfg.Endpoint.ValueString(), "the provider's endpoint"
	if cfg.Endpoint.IsNull() {
		endpoint, from = os.Getenv(EnvServer), EnvServer
		if endpoint == "" {
			endpoint, from = os.Getenv(EnvEndpoint), EnvEndpoint
		}
		if endpoint == "" {
			endpoint, from = DefaultEndpoint, "the default endpoint"
		}
	}
	token := cfg.Token.ValueString()
	if cfg.Token.IsNull() {
		token = os.Getenv(EnvToken)
	}
	base, err := client.ServerURL(endpoint)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid kvflow endpoint",
			fmt.Sprintf("Endpoint %q (%s) is not a URL such as http://127.0.0.1:8080: expected http:// or https:// and a host.", endpoint, from))
		return
	}

	c := client.NewClient(base, token)
	c.HTTP = &http.Client{Timeout: requestTimeout}
	// A server that cannot be reached is reported on the endpoint itself;
	// any other answer is left to the calls that follow.
	rctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	msg := ""
	switch err := c.Ready(rctx); {
	case ctx.Err() != nil:
	case rctx.Err() != nil:
		msg = fmt.Sprintf("The kvflow server at %s (%s) did not answer within %s", endpoint, from, reachTimeout)
	case unreachable(err):
		msg = fmt.Sprintf("%s (%s)", strings.TrimSuffix(kvflow.ErrorMessage(err), "."), from)
	}
	if msg != "" {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Cannot reach the kvflow server",
			msg+". Check the endpoint and that `kvflow server` is running.")
		return
	}
	resp.ResourceData = c
	resp.DataSourceData = c
}

func (p *kvflowProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newKVResource, newIncrementResource}
}

func (p *kvflowProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newKVDataSource, newKeysDataSource}
}

// clientOf takes the client Configure made; nil before the provider is
// configured (as during validation).
func clientOf(data any, add func(summary, detail string)) *client.Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*client.Client)
	if !ok {
		add("Unexpected provider data", fmt.Sprintf("Expected *client.Client, got %T. This is a bug in the kvflow provider.", data))
		return nil
	}
	return c
}
