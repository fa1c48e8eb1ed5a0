package api

import (
	_ "embed"
	"net/http"
)

// openapiJSON is the OpenAPI 3 document of every route; a test keeps it true.
//
//go:embed openapi.json
var openapiJSON []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiJSON)
}
