package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// A flow's scope is kept with it, and an execution's with it, so a worker
// or a trigger that loads them later runs within the same bounds; and the
// engine holds every task and template of the execution to it.
func TestRepository_KeepsScopes(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			scope := storage.NewScope("team.a.*", "prod")
			if _, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "team.a", ID: "f", Source: "s", Scope: scope}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "team.a", ID: "open", Source: "s"}); err != nil {
				t.Fatal(err)
			}
			got, err := p.DB.GetFlow(ctx, "team.a", "f")
			if err != nil || got.Scope.String() != "prod, team.a.*" {
				t.Fatalf("GetFlow scope = %s, %v", got.Scope, err)
			}
			list, err := p.DB.ListFlows(ctx, "team.a")
			if err != nil || len(list) != 2 || list[0].Scope.String() != "prod, team.a.*" || !list[1].Scope.Unrestricted() {
				t.Fatalf("ListFlows = %+v, %v", list, err)
			}
			// A redeploy takes the new deployer's scope.
			if _, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "team.a", ID: "f", Source: "s2", Scope: storage.NewScope("team.a")}); err != nil {
				t.Fatal(err)
			}
			if got, _ := p.DB.GetFlow(ctx, "team.a", "f"); got.Scope.String() != "team.a" {
				t.Fatalf("scope after redeploy = %s", got.Scope)
			}

			e := engineOn(t, p)
			f := mustParse(t, `
id: reach
namespace: team.a
variables: {v: "{{ kv('k', 'team', false) }}"}
tasks:
  - {id: own, type: test.kv.Set, key: k, value: 1}
  - {id: up, type: test.kv.Set, key: k, value: 1, namespace: team}
`)
			f.Scope = scope
			ex, err := e.Run(ctx, f, nil, engine.RunOptions{})
			if err != nil || ex.State != engine.FAILED || !strings.Contains(ex.Error, "Access to 'team' namespace is not allowed from 'team.a'") {
				t.Fatalf("run = %v, %s %q; want FAILED refusing team", err, ex.State, ex.Error)
			}
			// The variables, rendered before any task, were refused already.
			if _, _, err := p.Store.Get(ctx, "team.a", "k"); err == nil || len(ex.TaskRuns) != 0 {
				t.Fatalf("tasks ran (%d task runs): the variables' kv() escaped the scope", len(ex.TaskRuns))
			}
			stored, err := p.DB.GetExecution(ctx, ex.ID)
			if err != nil || stored.Scope.String() != "prod, team.a.*" {
				t.Fatalf("stored execution scope = %v, %v", stored, err)
			}
			if list, err := p.DB.ListExecutions(ctx, engine.ExecutionQuery{Namespace: "team.a"}); err != nil || len(list) != 1 || list[0].Scope.String() != "prod, team.a.*" {
				t.Fatalf("ListExecutions = %+v, %v", list, err)
			}
		})
	}
}
