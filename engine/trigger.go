package engine

// Trigger is one entry of a flow's triggers: what starts its executions
// besides an API call. Spec holds the type's own properties, decoded and
// checked by the type's TriggerType when the flow loads.
type Trigger struct {
	ID       string
	Type     string
	Disabled bool
	Inputs   map[string]any // inputs of the executions it creates
	Spec     any
	Line     int
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
