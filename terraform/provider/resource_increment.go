package provider

import (
	"context"
	"fmt"
	"math/big"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/numberdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/numberplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
)

var (
	_ resource.ResourceWithConfigure      = (*incrementResource)(nil)
	_ resource.ResourceWithValidateConfig = (*incrementResource)(nil)
)

// incrementAttrs are the increment's attributes a server error may be about.
var incrementAttrs = []string{"namespace", "key", "by"}

func newIncrementResource() resource.Resource { return &incrementResource{} }

// incrementResource is kvflow_kv_increment: one atomic increment of a
// NUMBER, made when the resource is created. Every attribute replaces it,
// so a change is another increment and Update is never called.
type incrementResource struct{ client *client.Client }

type incrementModel struct {
	Namespace types.String `tfsdk:"namespace"`
	Key       types.String `tfsdk:"key"`
	By        types.Number `tfsdk:"by"`
	Triggers  types.Map    `tfsdk:"triggers"`
	Value     types.Number `tfsdk:"value"`
	Version   types.Int64  `tfsdk:"version"`
}

func (r *incrementResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kv_increment"
}

func (r *incrementResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "One atomic increment of a NUMBER counter, made on create; a change to any attribute " +
			"increments again. The counter moving since (other increments, other writers) is no drift, and " +
			"destroying the resource leaves the counter as it is.",
		Attributes: map[string]schema.Attribute{
			"namespace": schema.StringAttribute{
				Required:      true,
				Description:   "Namespace, such as company.team.",
				PlanModifiers: replace,
			},
			"key": schema.StringAttribute{
				Required:      true,
				Description:   "Key of the counter: created at by when missing or expired; a key holding another type fails.",
				PlanModifiers: replace,
			},
			"by": schema.NumberAttribute{
				Optional: true,
				Computed: true,
				Default:  numberdefault.StaticBigFloat(big.NewFloat(1)),
				Description: "What to add, 1 by default; negative to subtract. Exact: 0.1 and 12345678901234567890 " +
					"keep every digit. An integer counter that would pass 64 bits fails.",
				PlanModifiers: []planmodifier.Number{numberplanmodifier.RequiresReplace()},
			},
			"triggers": schema.MapAttribute{
				Optional:      true,
				ElementType:   types.StringType,
				Description:   "Any values; a change increments again, as null_resource's triggers replace it.",
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplace()},
			},
			"value": schema.NumberAttribute{
				Computed:    true,
				Description: "The counter right after this increment.",
			},
			"version": schema.Int64Attribute{
				Computed:    true,
				Description: "The counter's version right after this increment.",
			},
		},
	}
}

func (r *incrementResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientOf(req.ProviderData, resp.Diagnostics.AddError)
}

// ValidateConfig checks the names and that by is a NUMBER the server takes.
func (r *incrementResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m incrementModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	validateNames(&resp.Diagnostics, m.Namespace, m.Key)
	if known(m.By) {
		if _, err := NumberOf(m.By.ValueBigFloat()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("by"), "Invalid by", kvflow.ErrorMessage(err))
		}
	}
}

func (r *incrementResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m incrementModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.client == nil {
		resp.Diagnostics.AddError("Provider not configured", "The kvflow provider was not configured before an increment.")
		return
	}
	ns, key := m.Namespace.ValueString(), m.Key.ValueString()
	summary := fmt.Sprintf("Cannot increment key %q in namespace %q", key, ns)
	by, err := NumberOf(m.By.ValueBigFloat())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("by"), summary, kvflow.ErrorMessage(err))
		return
	}
	v, written, err := r.client.Increment(ctx, ns, key, by, "", "")
	if err != nil {
		addError(&resp.Diagnostics, summary, err, incrementAttrs...)
		return
	}
	n, err := BigFloatOf(v)
	if err != nil {
		addError(&resp.Diagnostics, summary, err)
		return
	}
	m.Value, m.Version = types.NumberValue(n), types.Int64Value(written.Version)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Read keeps the state: the increment is made, and the counter moving since
// is what a counter does, not drift.
func (r *incrementResource) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

// Update is never called: every attribute replaces the resource.
func (r *incrementResource) Update(context.Context, resource.UpdateRequest, *resource.UpdateResponse) {
}

// Delete leaves the counter as it is: an increment made is not taken back.
func (r *incrementResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {
}
