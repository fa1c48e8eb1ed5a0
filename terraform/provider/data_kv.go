package provider

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

var (
	_ datasource.DataSourceWithConfigure      = (*kvDataSource)(nil)
	_ datasource.DataSourceWithValidateConfig = (*kvDataSource)(nil)
	_ datasource.DataSourceWithConfigure      = (*keysDataSource)(nil)
	_ datasource.DataSourceWithValidateConfig = (*keysDataSource)(nil)
)

func newKVDataSource() datasource.DataSource { return &kvDataSource{} }

// kvDataSource is data "kvflow_kv": one pair's value and metadata.
type kvDataSource struct{ client *client.Client }

type kvDataModel struct {
	Namespace      types.String `tfsdk:"namespace"`
	Key            types.String `tfsdk:"key"`
	Type           types.String `tfsdk:"type"`
	Value          types.String `tfsdk:"value"`
	Version        types.Int64  `tfsdk:"version"`
	ExpirationDate types.String `tfsdk:"expiration_date"`
}

func (d *kvDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kv"
}

func (d *kvDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Reads one key-value pair. A missing or expired key is an error.",
		Attributes: map[string]schema.Attribute{
			"namespace": schema.StringAttribute{Required: true, Description: "Namespace, such as company.team."},
			"key":       schema.StringAttribute{Required: true, Description: "Key."},
			"type":      schema.StringAttribute{Computed: true, Description: "One of " + typeList() + "."},
			"value": schema.StringAttribute{Computed: true, Description: "The value as text: compact JSON for JSON, " +
				"ISO-8601 for DATETIME, DATE and DURATION; use jsondecode() for JSON values."},
			"version":         schema.Int64Attribute{Computed: true, Description: "1 on creation, +1 on each write."},
			"expiration_date": schema.StringAttribute{Computed: true, Description: "When the pair expires (RFC 3339, UTC); null when it never does."},
		},
	}
}

func (d *kvDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientOf(req.ProviderData, resp.Diagnostics.AddError)
}

func (d *kvDataSource) ValidateConfig(ctx context.Context, req datasource.ValidateConfigRequest, resp *datasource.ValidateConfigResponse) {
	var m kvDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if !resp.Diagnostics.HasError() {
		validateNames(&resp.Diagnostics, m.Namespace, m.Key)
	}
}

func (d *kvDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m kvDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.client == nil {
		resp.Diagnostics.AddError("Provider not configured", "The kvflow provider was not configured before reading a pair.")
		return
	}
	ns, key := m.Namespace.ValueString(), m.Key.ValueString()
	summary := fmt.Sprintf("Cannot read key %q in namespace %q", key, ns)
	det, err := d.client.Detail(ctx, ns, key)
	if err != nil {
		addError(&resp.Diagnostics, summary, err, "namespace", "key")
		return
	}
	raw, _ := det.Value.(json.RawMessage)
	text, err := TextOf(storage.Type(det.Type), raw)
	if det.Sensitive { // the server masks it; this attribute is not a secret one
		text, err = storage.Mask, nil
	}
	if err != nil {
		addError(&resp.Diagnostics, summary, err)
		return
	}
	m.Type = types.StringValue(det.Type)
	m.Value = types.StringValue(text)
	m.Version = types.Int64Value(det.Version)
	m.ExpirationDate = expiryOf(det.Entry)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func newKeysDataSource() datasource.DataSource { return &keysDataSource{} }

// keysDataSource is data "kvflow_kv_keys": the live keys of a namespace.
type keysDataSource struct{ client *client.Client }

type keysModel struct {
	Namespace types.String `tfsdk:"namespace"`
	Prefix    types.String `tfsdk:"prefix"`
	Keys      types.List   `tfsdk:"keys"`
}

func (d *keysDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kv_keys"
}

func (d *keysDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Lists the keys of a namespace that have not expired, sorted.",
		Attributes: map[string]schema.Attribute{
			"namespace": schema.StringAttribute{Required: true, Description: "Namespace, such as company.team."},
			"prefix":    schema.StringAttribute{Optional: true, Description: "Only keys starting with this text."},
			"keys":      schema.ListAttribute{Computed: true, ElementType: types.StringType, Description: "The keys, sorted."},
		},
	}
}

func (d *keysDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientOf(req.ProviderData, resp.Diagnostics.AddError)
}

func (d *keysDataSource) ValidateConfig(ctx context.Context, req datasource.ValidateConfigRequest, resp *datasource.ValidateConfigResponse) {
	var m keysModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if !resp.Diagnostics.HasError() && known(m.Namespace) {
		if err := storage.ValidateNamespace(m.Namespace.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("namespace"), "Invalid namespace", kvflow.ErrorMessage(err))
		}
	}
}

func (d *keysDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m keysModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.client == nil {
		resp.Diagnostics.AddError("Provider not configured", "The kvflow provider was not configured before listing keys.")
		return
	}
	ns := m.Namespace.ValueString()
	keys, err := d.client.Keys(ctx, ns, m.Prefix.ValueString())
	if err != nil {
		addError(&resp.Diagnostics, fmt.Sprintf("Cannot list the keys of namespace %q", ns), err, "namespace")
		return
	}
	if keys == nil {
		keys = []string{}
	}
	list, diags := types.ListValueFrom(ctx, types.StringType, keys)
	resp.Diagnostics.Append(diags...)
	m.Keys = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
