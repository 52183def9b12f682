package wsgate

import "net/http"

// mountDemo serves the development demo page (dev mode only).
func (s *Server) mountDemo(mux *http.ServeMux) {}
