package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
)

// Trigger is one entry of a flow's triggers: what starts its executions
// besides an API call. Spec is what the type's Decode returned.
type Trigger struct {
	ID       string
	Type     string
	Disabled bool
	Inputs   map[string]any // inputs of the executions it creates
	Spec     any
	Line     int
}

// TriggerType is a kind of trigger. Decode checks a trigger's own
// properties when its flow loads (n is the whole trigger map; id, type,
// disabled and inputs are already taken) and returns its spec, or field
// errors placed by line. What fires the trigger lives elsewhere: the
// schedule and flow loops (Triggers), the webhook route (api), the KV
// change feed.
type TriggerType struct {
	Type   string
	Decode func(n *yaml.Node, path string) (any, []kvflow.FieldError)
}

var (
	triggerMu    sync.RWMutex
	triggerTypes = map[string]TriggerType{}
)

// RegisterTriggerType adds a trigger type; a second registration of a type
// panics, as a duplicate task type does.
func RegisterTriggerType(t TriggerType) {
	triggerMu.Lock()
	defer triggerMu.Unlock()
	if _, dup := triggerTypes[t.Type]; dup {
		panic("engine: trigger type " + t.Type + " registered twice")
	}
	triggerTypes[t.Type] = t
}

func lookupTriggerType(typ string) (TriggerType, bool) {
	triggerMu.RLock()
	defer triggerMu.RUnlock()
	t, ok := triggerTypes[typ]
	return t, ok
}

func triggerTypeNames() []string {
	triggerMu.RLock()
	defer triggerMu.RUnlock()
	var out []string
	for k := range triggerTypes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Built-in trigger types, as Kestra names them.
const (
	ScheduleTrigger = "io.kestra.plugin.core.trigger.Schedule"
	FlowTrigger     = "io.kestra.plugin.core.trigger.Flow"
	WebhookTrigger  = "io.kestra.plugin.core.trigger.Webhook"
)

// Schedule fires on a cron expression.
type Schedule struct {
	Cron     string
	Location *time.Location
	// RecoverLast runs the last tick missed while every process was down
	// (recoverMissedSchedules: LAST, the default); false skips them (NONE).
	RecoverLast bool
	sched       cron.Schedule
}

// Next is the first tick after t.
func (s *Schedule) Next(t time.Time) time.Time { return s.sched.Next(t.In(s.Location)) }

// FlowCondition selects the executions whose end fires a Flow trigger.
type FlowCondition struct {
	Namespace string // "" any
	Prefix    bool   // Namespace also matches its children
	FlowID    string // "" any
	In, NotIn []State
}

// FlowSpec fires when an execution of another flow ends.
type FlowSpec struct{ Conditions []FlowCondition }

// Matches reports whether an ended execution fires the trigger.
func (f *FlowSpec) Matches(ex *Execution) bool {
	for _, c := range f.Conditions {
		if c.Namespace != "" && ex.Namespace != c.Namespace && !(c.Prefix && strings.HasPrefix(ex.Namespace, c.Namespace+".")) {
			return false
		}
		if c.FlowID != "" && ex.FlowID != c.FlowID {
			return false
		}
		if len(c.In) > 0 && !hasState(c.In, ex.State) {
			return false
		}
		if hasState(c.NotIn, ex.State) {
			return false
		}
	}
	return true
}

func hasState(list []State, s State) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WebhookSpec fires on a request to the webhook route with its key.
type WebhookSpec struct{ Key string }

// triggerSpec holds every built-in trigger property; Decode refuses the
// ones another type owns.
type triggerSpec struct {
	ID                     string          `yaml:"id" required:"true"`
	Type                   string          `yaml:"type" required:"true"`
	Description            string          `yaml:"description"`
	Disabled               bool            `yaml:"disabled"`
	Inputs                 map[string]any  `yaml:"inputs"`
	Cron                   *string         `yaml:"cron"`
	WithSeconds            bool            `yaml:"withSeconds"`
	Timezone               *string         `yaml:"timezone"`
	RecoverMissedSchedules *string         `yaml:"recoverMissedSchedules"`
	Conditions             []conditionSpec `yaml:"conditions"`
	Key                    *string         `yaml:"key"`
}

type conditionSpec struct {
	Type      string   `yaml:"type" required:"true"`
	Namespace string   `yaml:"namespace"`
	Prefix    bool     `yaml:"prefix"`
	FlowID    string   `yaml:"flowId"`
	In        []string `yaml:"in"`
	NotIn     []string `yaml:"notIn"`
}

// builtinSpec decodes n strictly and returns the spec with the lines of its keys.
func builtinSpec(n *yaml.Node, path string) (triggerSpec, map[string]int, []kvflow.FieldError) {
	var s triggerSpec
	errs := taskrun.DecodeStrict(n, &s, path)
	return s, keyLines(n), errs
}

func fieldErr(line int, field, format string, args ...any) kvflow.FieldError {
	return kvflow.FieldError{Line: line, Field: field, Message: fmt.Sprintf(format, args...)}
}

// only refuses the properties of other trigger types.
func only(s triggerSpec, lines map[string]int, path string, allowed ...string) []kvflow.FieldError {
	present := map[string]bool{"cron": s.Cron != nil, "withSeconds": s.WithSeconds, "timezone": s.Timezone != nil,
		"recoverMissedSchedules": s.RecoverMissedSchedules != nil, "conditions": s.Conditions != nil, "key": s.Key != nil}
	var errs []kvflow.FieldError
	for _, k := range []string{"cron", "withSeconds", "timezone", "recoverMissedSchedules", "conditions", "key"} {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if present[k] && !ok {
			errs = append(errs, fieldErr(lines[k], path+"."+k, "is not a property of %s triggers", s.Type))
		}
	}
	return errs
}

var cronDescriptors = map[string]bool{"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true, "@daily": true, "@midnight": true, "@hourly": true}

func decodeSchedule(n *yaml.Node, path string) (any, []kvflow.FieldError) {
	s, lines, errs := builtinSpec(n, path)
	errs = append(errs, only(s, lines, path, "cron", "withSeconds", "timezone", "recoverMissedSchedules")...)
	out := &Schedule{Location: time.UTC, RecoverLast: true}
	if s.Timezone != nil {
		loc, err := time.LoadLocation(*s.Timezone)
		if err != nil || *s.Timezone == "" || *s.Timezone == "Local" {
			errs = append(errs, fieldErr(lines["timezone"], path+".timezone", "%q is not a known time zone: expected an IANA name such as Europe/Paris or UTC", kvflow.Clip(*s.Timezone)))
		} else {
			out.Location = loc
		}
	}
	if s.RecoverMissedSchedules != nil {
		switch *s.RecoverMissedSchedules {
		case "LAST":
		case "NONE":
			out.RecoverLast = false
		default:
			errs = append(errs, fieldErr(lines["recoverMissedSchedules"], path+".recoverMissedSchedules", "%q is not supported: expected LAST (run the last missed tick once) or NONE", kvflow.Clip(*s.RecoverMissedSchedules)))
		}
	}
	if s.Cron == nil {
		errs = append(errs, fieldErr(line(n), path+".cron", "the property is required: a cron expression such as \"*/5 * * * *\" or @hourly"))
		return out, errs
	}
	expr := strings.TrimSpace(*s.Cron)
	fields := len(strings.Fields(expr))
	want := 5
	opts := cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow
	if s.WithSeconds {
		want, opts = 6, opts|cron.Second
	}
	switch {
	case strings.HasPrefix(expr, "@") && !cronDescriptors[expr]:
		errs = append(errs, fieldErr(lines["cron"], path+".cron", "%q is not a known schedule: expected 5 fields (6 with withSeconds: true) or one of @yearly, @monthly, @weekly, @daily, @hourly", kvflow.Clip(expr)))
	case !strings.HasPrefix(expr, "@") && fields != want:
		names := "minute hour day-of-month month day-of-week"
		if s.WithSeconds {
			names = "second " + names + ", as withSeconds is true"
		}
		errs = append(errs, fieldErr(lines["cron"], path+".cron", "%q has %d fields: expected %d (%s)", kvflow.Clip(expr), fields, want, names))
	default:
		parser := cron.NewParser(opts | cron.Descriptor)
		sched, err := parser.Parse(expr)
		switch {
		case err != nil:
			errs = append(errs, fieldErr(lines["cron"], path+".cron", "%q is not a valid cron expression: %s", kvflow.Clip(expr), cronFieldError(parser, expr, s.WithSeconds, err)))
		case sched.Next(time.Now().In(out.Location)).IsZero():
			errs = append(errs, fieldErr(lines["cron"], path+".cron", "%q never fires: no date in the next 5 years matches it", kvflow.Clip(expr)))
		default:
			out.Cron, out.sched = expr, sched
		}
	}
	return out, errs
}

// cronFields name the fields of a 5-field cron expression and what each takes.
var cronFields = []struct{ name, takes string }{
	{"minute", "0-59"}, {"hour", "0-23"}, {"day-of-month", "1-31"},
	{"month", "1-12 or JAN-DEC"}, {"day-of-week", "0-6 or SUN-SAT"},
}

// cronFieldError says which field of expr (fields counted right) the parser
// refuses and what it takes, in place of the parser's own message.
func cronFieldError(p cron.Parser, expr string, withSeconds bool, err error) string {
	fields := strings.Fields(expr)
	names := cronFields
	if withSeconds {
		names = append([]struct{ name, takes string }{{"second", "0-59"}}, cronFields...)
	}
	for i, f := range fields {
		probe := make([]string, len(fields))
		for j := range probe {
			probe[j] = "*"
		}
		probe[i] = f
		if _, ferr := p.Parse(strings.Join(probe, " ")); ferr != nil && i < len(names) {
			return fmt.Sprintf("the %s field %q is not valid: expected %s, a range (1-5), a list (1,3) or a step (*/15)", names[i].name, kvflow.Clip(f), names[i].takes)
		}
	}
	return err.Error()
}

func decodeFlowTrigger(n *yaml.Node, path string) (any, []kvflow.FieldError) {
	s, lines, errs := builtinSpec(n, path)
	errs = append(errs, only(s, lines, path, "conditions")...)
	out := &FlowSpec{}
	if len(s.Conditions) == 0 {
		errs = append(errs, fieldErr(line(n), path+".conditions", "a Flow trigger needs conditions: ExecutionFlow (namespace, flowId), ExecutionNamespace (namespace, prefix) or ExecutionStatus (in, notIn)"))
	}
	list := valueNode(n, "conditions")
	for i, c := range s.Conditions {
		cp := fmt.Sprintf("%s.conditions[%d]", path, i)
		cl := line(item(list, i))
		fc := FlowCondition{Namespace: c.Namespace, Prefix: c.Prefix, FlowID: c.FlowID}
		states := func(names []string, field string) []State {
			var out []State
			for _, n := range names {
				st := State(strings.ToUpper(n))
				switch st {
				case CREATED, RUNNING:
					errs = append(errs, fieldErr(cl, cp+"."+field, "%s is not a final state: expected SUCCESS, WARNING, FAILED or KILLED", n))
				case SUCCESS, WARNING, FAILED, KILLED:
					out = append(out, st)
				default:
					errs = append(errs, fieldErr(cl, cp+"."+field, "%q is not a state: expected SUCCESS, WARNING, FAILED or KILLED", kvflow.Clip(n)))
				}
			}
			return out
		}
		switch strings.TrimPrefix(c.Type, "io.kestra.plugin.core.condition.") {
		case "ExecutionFlow":
			if c.Namespace == "" || c.FlowID == "" {
				errs = append(errs, fieldErr(cl, cp, "ExecutionFlow needs namespace and flowId"))
			}
		case "ExecutionNamespace":
			if c.Namespace == "" {
				errs = append(errs, fieldErr(cl, cp+".namespace", "ExecutionNamespace needs a namespace"))
			}
		case "ExecutionStatus":
			fc.In, fc.NotIn = states(c.In, "in"), states(c.NotIn, "notIn")
			if len(c.In) == 0 && len(c.NotIn) == 0 {
				errs = append(errs, fieldErr(cl, cp, "ExecutionStatus needs in or notIn"))
			}
		default:
			errs = append(errs, fieldErr(cl, cp+".type", "%q is not a known condition: expected io.kestra.plugin.core.condition.ExecutionFlow, ExecutionNamespace or ExecutionStatus", kvflow.Clip(c.Type)))
		}
		out.Conditions = append(out.Conditions, fc)
	}
	return out, errs
}

func decodeWebhook(n *yaml.Node, path string) (any, []kvflow.FieldError) {
	s, lines, errs := builtinSpec(n, path)
	errs = append(errs, only(s, lines, path, "key")...)
	if s.Key == nil || *s.Key == "" {
		errs = append(errs, fieldErr(line(n), path+".key", "the property is required: the webhook's secret, part of its URL"))
		return &WebhookSpec{}, errs
	}
	if len(*s.Key) < 8 || strings.ContainsAny(*s.Key, "/?#% ") {
		errs = append(errs, fieldErr(lines["key"], path+".key", "must be at least 8 characters without '/', '?', '#', '%%' or spaces: it is the webhook's secret"))
	}
	return &WebhookSpec{Key: *s.Key}, errs
}

func init() {
	RegisterTriggerType(TriggerType{Type: ScheduleTrigger, Decode: decodeSchedule})
	RegisterTriggerType(TriggerType{Type: FlowTrigger, Decode: decodeFlowTrigger})
	RegisterTriggerType(TriggerType{Type: WebhookTrigger, Decode: decodeWebhook})
}

// triggerHead is what every trigger has.
type triggerHead struct {
	ID       string         `yaml:"id"`
	Type     string         `yaml:"type"`
	Disabled bool           `yaml:"disabled"`
	Inputs   map[string]any `yaml:"inputs"`
}

// triggers decodes the flow's triggers: each type checks its own
// properties; ids must be unique.
func (p *parser) triggers(list *yaml.Node) []*Trigger {
	if list == nil {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		p.errs.add(list.Line, "triggers", "expected a list of triggers, not %s", taskrun.DescribeNode(list))
		return nil
	}
	var out []*Trigger
	seen := map[string]int{}
	for i, n := range list.Content {
		path := fmt.Sprintf("triggers[%d]", i)
		if n.Kind != yaml.MappingNode {
			p.errs.add(n.Line, path, "a trigger is a map with id and type, not %s", taskrun.DescribeNode(n))
			continue
		}
		lines := keyLines(n)
		var h triggerHead
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := n.Content[j].Value, n.Content[j+1]
			switch k {
			case "id":
				h.ID = v.Value
			case "type":
				h.Type = v.Value
			}
		}
		if h.ID == "" {
			p.errs.add(n.Line, path+".id", "the property is required")
		} else if !idRe.MatchString(h.ID) {
			p.errs.add(lines["id"], path+".id", "%q is not a valid id: it must start with a letter or a digit and contain only letters, digits, underscores (_) and hyphens (-)", kvflow.Clip(h.ID))
		} else if first, dup := seen[h.ID]; dup {
			p.errs.add(lines["id"], path+".id", "duplicate trigger id %q: triggers[%d] has it too", h.ID, first)
		} else {
			seen[h.ID] = i
		}
		tt, ok := lookupTriggerType(h.Type)
		if h.Type == "" {
			p.errs.add(n.Line, path+".type", "the property is required")
			continue
		} else if !ok {
			p.errs.add(lines["type"], path+".type", "unknown trigger type %q: expected one of %s", kvflow.Clip(h.Type), strings.Join(triggerTypeNames(), ", "))
			continue
		}
		spec, ferrs := tt.Decode(n, path)
		if h.ID == "" { // said once above, not again by the type
			ferrs = slices.DeleteFunc(ferrs, func(f kvflow.FieldError) bool { return f.Field == path+".id" })
		}
		p.errs.addField(ferrs)
		_ = n.Decode(&h) // disabled and inputs; each type decodes them strictly
		out = append(out, &Trigger{ID: h.ID, Type: h.Type, Disabled: h.Disabled, Inputs: h.Inputs, Spec: spec, Line: n.Line})
	}
	return out
}

// triggerInputs checks that the inputs a trigger gives are the flow's: an
// unknown one would fail every execution the trigger starts.
func (p *parser) triggerInputs(list *yaml.Node, inputs []Input) {
	declared := make([]string, len(inputs))
	for i, in := range inputs {
		declared[i] = in.ID
	}
	msg := "the flow declares no inputs"
	if len(declared) > 0 {
		msg = "the flow declares " + strings.Join(declared, ", ")
	}
	for i, n := range item0(list) {
		lines := keyLines(valueNode(n, "inputs"))
		ids := make([]string, 0, len(lines))
		for id := range lines {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if !slices.Contains(declared, id) {
				p.errs.add(lines[id], fmt.Sprintf("triggers[%d].inputs.%s", i, id), "unknown input; %s", msg)
			}
		}
	}
}

// concurrencySpec is the flow's concurrency property.
type concurrencySpec struct {
	Limit    int    `yaml:"limit" required:"true"`
	Behavior string `yaml:"behavior"`
}

func (p *parser) concurrency(s *concurrencySpec, n *yaml.Node) *Concurrency {
	if s == nil {
		return nil
	}
	lines := keyLines(n)
	c := &Concurrency{Limit: s.Limit, Behavior: ConcurrencyBehavior(strings.ToUpper(s.Behavior))}
	if c.Behavior == "" {
		c.Behavior = QUEUE
	}
	if s.Limit < 1 {
		p.errs.add(lines["limit"], "concurrency.limit", "must be 1 or more, not %d", s.Limit)
	}
	switch c.Behavior {
	case QUEUE, CANCEL, FAIL:
	default:
		p.errs.add(lines["behavior"], "concurrency.behavior", "%q is not supported: expected QUEUE, CANCEL or FAIL", kvflow.Clip(s.Behavior))
	}
	return c
}

// ConcurrencyBehavior is what happens to an execution over the limit.
type ConcurrencyBehavior string

const (
	QUEUE  ConcurrencyBehavior = "QUEUE"  // wait until a running one ends
	CANCEL ConcurrencyBehavior = "CANCEL" // end KILLED at once
	FAIL   ConcurrencyBehavior = "FAIL"   // end FAILED at once
)

// Concurrency limits the executions of a flow running at once, across
// every worker.
type Concurrency struct {
	Limit    int
	Behavior ConcurrencyBehavior
}
