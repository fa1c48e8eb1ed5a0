package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

var (
	_ resource.ResourceWithConfigure      = (*kvResource)(nil)
	_ resource.ResourceWithImportState    = (*kvResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*kvResource)(nil)
	_ resource.ResourceWithValidateConfig = (*kvResource)(nil)
)

// kvAttrs are the resource's attributes a server error may be about.
var kvAttrs = []string{"namespace", "key", "value", "type", "ttl", "description"}

func newKVResource() resource.Resource { return &kvResource{} }

// kvResource is kvflow_kv: one key-value pair.
type kvResource struct{ client *client.Client }

type kvModel struct {
	ID             types.String `tfsdk:"id"`
	Namespace      types.String `tfsdk:"namespace"`
	Key            types.String `tfsdk:"key"`
	Value          types.String `tfsdk:"value"`
	Type           types.String `tfsdk:"type"`
	TTL            types.String `tfsdk:"ttl"`
	Description    types.String `tfsdk:"description"`
	Version        types.Int64  `tfsdk:"version"`
	UpdateDate     types.String `tfsdk:"update_date"`
	ExpirationDate types.String `tfsdk:"expiration_date"`
	Sensitive      types.Bool   `tfsdk:"sensitive"`
}

func (r *kvResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kv"
}

func (r *kvResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A typed key-value pair in a kvflow namespace. Changing namespace or key replaces it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				Description:   "namespace/key.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"namespace": schema.StringAttribute{
				Required:      true,
				Description:   "Namespace, such as company.team.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"key": schema.StringAttribute{
				Required:      true,
				Description:   "Key: letters, digits, dots, underscores and hyphens, starting with a letter or digit.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"value": schema.StringAttribute{
				Required:  true,
				Sensitive: true, // plans and outputs show (sensitive value)
				Description: "The value as text: a JSON document for JSON, ISO-8601 for DATETIME, DATE and DURATION. " +
					"Compared by meaning: reformatted JSON, 1.0 against 1 or an instant in another zone is no change.",
			},
			"type": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Description: "One of " + typeList() + ". When left out, inferred from the value as the API infers a " +
					"text/plain body (42 is a NUMBER, {\"a\":1} a JSON, 2024-07-15 a DATE).",
			},
			"ttl": schema.StringAttribute{
				Optional: true,
				Description: "Time to live, an ISO-8601 duration such as PT5M or P30D, counted from each write. " +
					"Compared by length: PT24H against P1D is no change. An expiry changed outside Terraform (a write " +
					"with another TTL or none) plans an update that sets this one again.",
			},
			"description": schema.StringAttribute{
				Optional:    true,
				Description: fmt.Sprintf("Free-text description, at most %d characters.", storage.MaxDescriptionLen),
			},
			"sensitive": schema.BoolAttribute{
				Optional:    true,
				Description: "Seal the value at rest on the server and mask it in its logs, outputs, UI and CLI.",
			},
			"version": schema.Int64Attribute{
				Computed:    true,
				Description: "1 on creation, +1 on each write.",
			},
			"update_date": schema.StringAttribute{
				Computed:    true,
				Description: "Time of the last write (RFC 3339, UTC).",
			},
			"expiration_date": schema.StringAttribute{
				Computed:    true,
				Description: "When the pair expires (RFC 3339, UTC); null when it never does.",
			},
		},
	}
}

func typeList() string {
	names := make([]string, len(storage.Types))
	for i, t := range storage.Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func (r *kvResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientOf(req.ProviderData, resp.Diagnostics.AddError)
}

// ValidateConfig checks what it can before any call: names, type, TTL,
// description and the value against its type.
func (r *kvResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m kvModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	validateNames(&resp.Diagnostics, m.Namespace, m.Key)
	typeOK := true
	if known(m.Type) {
		if err := checkType(m.Type.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("type"), "Invalid type", err.Error())
			typeOK = false
		}
	}
	if known(m.TTL) {
		if _, err := storage.ParseTTL(m.TTL.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("ttl"), "Invalid TTL", kvflow.ErrorMessage(err))
		}
	}
	if known(m.Description) {
		if err := storage.ValidateDescription(m.Description.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("description"), "Invalid description", kvflow.ErrorMessage(err))
		}
	}
	if typeOK && known(m.Type) && known(m.Value) {
		if _, err := storage.ParseAs(storage.Type(m.Type.ValueString()), m.Value.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("value"), "Invalid value", kvflow.ErrorMessage(err))
		}
	}
}

// validateNames reports a bad namespace or key on its attribute.
func validateNames(diags *diag.Diagnostics, ns, key types.String) {
	if known(ns) {
		if err := storage.ValidateNamespace(ns.ValueString()); err != nil {
			diags.AddAttributeError(path.Root("namespace"), "Invalid namespace", kvflow.ErrorMessage(err))
		}
	}
	if known(key) {
		if err := storage.ValidateKey(key.ValueString()); err != nil {
			diags.AddAttributeError(path.Root("key"), "Invalid key", kvflow.ErrorMessage(err))
		}
	}
}

// checkType accepts the seven type names, in upper case as the API answers them.
func checkType(s string) error {
	for _, t := range storage.Types {
		if s == string(t) {
			return nil
		}
	}
	return fmt.Errorf("Type %q is unknown; expected one of %s.", s, typeList())
}

// nullable is what every framework value has.
type nullable interface {
	IsNull() bool
	IsUnknown() bool
}

// known reports whether v has a value: neither null nor unknown.
func known(v nullable) bool {
	return !v.IsNull() && !v.IsUnknown()
}

// ModifyPlan infers a missing type, keeps the stored text of a value or a
// TTL that means the same as the configured one, and plans no change at all
// when nothing but such a reformatting differs.
func (r *kvResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	var plan, config kvModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if config.Type.IsNull() {
		if known(plan.Value) {
			plan.Type = types.StringValue(string(InferType(plan.Value.ValueString())))
		} else {
			plan.Type = types.StringUnknown()
		}
	}
	if known(plan.Namespace) && known(plan.Key) {
		plan.ID = types.StringValue(plan.Namespace.ValueString() + "/" + plan.Key.ValueString())
	} else {
		plan.ID = types.StringUnknown()
	}

	if req.State.Raw.IsNull() { // create
		plan.unknownAfterWrite()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	var state kvModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if known(plan.Value) && known(plan.Type) && plan.Type.Equal(state.Type) && !state.Value.IsNull() &&
		SameValue(storage.Type(plan.Type.ValueString()), plan.Value.ValueString(), state.Value.ValueString()) {
		plan.Value = state.Value
	}
	if known(plan.TTL) && !state.TTL.IsNull() && sameTTL(plan.TTL.ValueString(), state.TTL.ValueString()) {
		plan.TTL = state.TTL
	}
	if plan.Namespace.Equal(state.Namespace) && plan.Key.Equal(state.Key) && plan.Value.Equal(state.Value) &&
		plan.Type.Equal(state.Type) && plan.TTL.Equal(state.TTL) && plan.Description.Equal(state.Description) &&
		plan.Sensitive.Equal(state.Sensitive) {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &state)...)
		return
	}
	plan.unknownAfterWrite()
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// unknownAfterWrite marks what a write gives the pair as unknown until
// apply; without a TTL the write leaves it without expiry.
func (m *kvModel) unknownAfterWrite() {
	m.Version, m.UpdateDate, m.ExpirationDate = types.Int64Unknown(), types.StringUnknown(), types.StringUnknown()
	if m.TTL.IsNull() {
		m.ExpirationDate = types.StringNull()
	}
}

// sameTTL reports whether a and b are TTLs of the same length (P1D, PT24H, 86400).
func sameTTL(a, b string) bool {
	da, errA := storage.ParseTTL(a)
	db, errB := storage.ParseTTL(b)
	return errA == nil && errB == nil && da == db
}

// Create writes only a key that does not exist (If-None-Match: *): a pair
// Terraform does not manage is neither overwritten nor, later, destroyed.
func (r *kvResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	r.apply(ctx, req.Plan, &resp.State, 0, &resp.Diagnostics)
}

// Update writes only over the version Terraform last read (If-Match): a
// change made since, by anyone else, fails the apply instead of being lost.
func (r *kvResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var prior types.Int64
	if resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("version"), &prior)...); resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, req.Plan, &resp.State, prior.ValueInt64(), &resp.Diagnostics)
}

// apply writes the planned pair (create and update are the same PUT, an
// update conditional on ifVersion when > 0, a create on the key's absence)
// and records the result as the new state.
func (r *kvResource) apply(ctx context.Context, p tfsdk.Plan, state *tfsdk.State, ifVersion int64, diags *diag.Diagnostics) {
	var plan kvModel
	if diags.Append(p.Get(ctx, &plan)...); diags.HasError() {
		return
	}
	if r.write(ctx, &plan, ifVersion, diags); diags.HasError() {
		return
	}
	diags.Append(state.Set(ctx, &plan)...)
}

// write PUTs the planned pair with its type, TTL and description (only over
// version ifVersion when > 0, only as a new key otherwise), then reads back
// the version, update date and expiry the server gave it.
func (r *kvResource) write(ctx context.Context, m *kvModel, ifVersion int64, diags *diag.Diagnostics) {
	if r.client == nil {
		diags.AddError("Provider not configured", "The kvflow provider was not configured before writing a pair.")
		return
	}
	ns, key := m.Namespace.ValueString(), m.Key.ValueString()
	typ := storage.Type(m.Type.ValueString())
	if m.Type.IsUnknown() || m.Type.IsNull() {
		typ = InferType(m.Value.ValueString())
	}
	err := r.client.Set(ctx, ns, key, m.Value.ValueString(), client.SetOptions{
		Type: typ, TTL: m.TTL.ValueString(), Description: m.Description.ValueString(), Sensitive: m.Sensitive.ValueBool(),
		IfVersion: ifVersion, IfAbsent: ifVersion == 0,
	})
	if kvflow.ErrorCode(err) == kvflow.EPRECONDITION && ifVersion == 0 {
		diags.AddAttributeError(path.Root("key"), fmt.Sprintf("Key %q already exists in namespace %q", key, ns),
			fmt.Sprintf("Terraform did not overwrite it: it creates only new keys. To manage this pair, import it with "+
				"`terraform import kvflow_kv.NAME %s/%s` (NAME: this resource's name), or delete it first.", ns, key))
		return
	}
	if kvflow.ErrorCode(err) == kvflow.EPRECONDITION {
		diags.AddError(fmt.Sprintf("Key %q in namespace %q changed since Terraform read it", key, ns),
			kvflow.ErrorMessage(err)+" It was not overwritten: run terraform plan again to see the change, then apply.")
		return
	}
	if err != nil {
		addError(diags, fmt.Sprintf("Cannot write key %q in namespace %q", key, ns), err, kvAttrs...)
		return
	}
	d, err := r.client.Detail(ctx, ns, key)
	if err != nil {
		addError(diags, fmt.Sprintf("Cannot read back key %q in namespace %q", key, ns), err, kvAttrs...)
		return
	}
	m.ID = types.StringValue(ns + "/" + key)
	m.Type = types.StringValue(string(typ))
	m.Version = types.Int64Value(d.Version)
	m.UpdateDate = types.StringValue(d.UpdateDate.UTC().Format(client.TimeFormat))
	m.ExpirationDate = expiryOf(d.Entry)
}

// expiryOf is when e expires, null when it never does.
func expiryOf(e client.Entry) types.String {
	if e.ExpirationDate.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(e.ExpirationDate.UTC().Format(client.TimeFormat))
}

// ttlOf is the TTL to keep in state for a pair the server shows as e. An
// expiry Terraform has seen keeps the state's TTL: counting down is no change.
// Another one comes from a write made outside Terraform: the TTL is then the
// time from that write to the expiry (null when there is none), an update
// unless it is the configured one.
func ttlOf(state kvModel, e client.Entry) types.String {
	if expiryOf(e).Equal(state.ExpirationDate) {
		return state.TTL
	}
	if e.ExpirationDate.IsZero() {
		return types.StringNull()
	}
	ttl := storage.FormatDuration(e.ExpirationDate.Sub(e.UpdateDate.Time))
	if known(state.TTL) && sameTTL(state.TTL.ValueString(), ttl) {
		return state.TTL
	}
	return types.StringValue(ttl)
}

func (r *kvResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state kvModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.client == nil {
		resp.Diagnostics.AddError("Provider not configured", "The kvflow provider was not configured before reading a pair.")
		return
	}
	ns, key := state.Namespace.ValueString(), state.Key.ValueString()
	d, err := r.client.Reveal(ctx, ns, key)
	switch kvflow.ErrorCode(err) {
	case "":
	case kvflow.ENOTFOUND, kvflow.EEXPIRED: // gone: plan to create it again
		resp.State.RemoveResource(ctx)
		return
	default:
		addError(&resp.Diagnostics, fmt.Sprintf("Cannot read key %q in namespace %q", key, ns), err, kvAttrs...)
		return
	}
	raw, _ := d.Value.(json.RawMessage)
	typ := storage.Type(d.Type)
	text, err := TextOf(typ, raw)
	if err != nil {
		addError(&resp.Diagnostics, fmt.Sprintf("Cannot read key %q in namespace %q", key, ns), err)
		return
	}
	// Keep the configured text while it means what the server holds.
	if state.Value.IsNull() || !state.Type.Equal(types.StringValue(d.Type)) || !SameValue(typ, state.Value.ValueString(), text) {
		state.Value = types.StringValue(text)
	}
	state.ID = types.StringValue(ns + "/" + key)
	state.Type = types.StringValue(d.Type)
	// The server keeps no difference between an empty description and none.
	switch {
	case d.Description != "":
		state.Description = types.StringValue(d.Description)
	case state.Description.ValueString() != "":
		state.Description = types.StringNull()
	}
	switch { // as with the description: unset and false are the same
	case d.Sensitive:
		state.Sensitive = types.BoolValue(true)
	case state.Sensitive.ValueBool():
		state.Sensitive = types.BoolValue(false)
	}
	state.TTL, state.ExpirationDate = ttlOf(state, d.Entry), expiryOf(d.Entry)
	state.Version = types.Int64Value(d.Version)
	state.UpdateDate = types.StringValue(d.UpdateDate.UTC().Format(client.TimeFormat))
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *kvResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state kvModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.client == nil {
		resp.Diagnostics.AddError("Provider not configured", "The kvflow provider was not configured before deleting a pair.")
		return
	}
	ns, key := state.Namespace.ValueString(), state.Key.ValueString()
	// A pair already gone (deleted, expired) is what a delete wants.
	if _, err := r.client.Delete(ctx, ns, key); err != nil && kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		addError(&resp.Diagnostics, fmt.Sprintf("Cannot delete key %q in namespace %q", key, ns), err, kvAttrs...)
	}
}

// ImportState takes "namespace/key"; Read fills in the rest.
func (r *kvResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ns, key, err := ParseImportID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", kvflow.ErrorMessage(err))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), ns+"/"+key)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("namespace"), ns)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("key"), key)...)
}
