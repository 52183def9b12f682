package wsgate

import "net/http"

// mountRealtime registers the real-time core's HTTP endpoints (demo page, client module).
func (s *Server) mountRealtime(*http.ServeMux) {}
