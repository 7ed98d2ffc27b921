"""Pyramid demo app: GET /add/{x}/{y} answers str(x + y).

Run from /app with: python3 -m e2e_k8s.demo   (listens on 0.0.0.0:8080, PORT overrides)
"""
import os

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.response import Response


def add(request):
    try:
        x = int(request.matchdict["x"])
        y = int(request.matchdict["y"])
    except ValueError:
        return HTTPBadRequest("x and y must be integers")
    return Response(str(x + y))


def healthz(request):
    return Response("ok")


def make_app():
    with Configurator() as config:
        config.add_route("add", "/add/{x}/{y}")
        config.add_view(add, route_name="add")
        config.add_route("healthz", "/healthz")
        config.add_view(healthz, route_name="healthz")
        return config.make_wsgi_app()


def main():
    port = int(os.environ.get("PORT", "8080"))
    app = make_app()
    print("demo: listening on 0.0.0.0:%d" % port, flush=True)
    try:
        from waitress import serve
    except ImportError:  # no python3-waitress: the standard library's server
        from wsgiref.simple_server import make_server
        make_server("0.0.0.0", port, app).serve_forever()
    else:
        serve(app, host="0.0.0.0", port=port)


if __name__ == "__main__":
    main()
