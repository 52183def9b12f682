package wsgate

import "net/http"

// mountGateways registers the gateway routes (routes[] with an upstream).
func (s *Server) mountGateways(*http.ServeMux) {}
