"""Thin views: read and validate the request, make one provider call, serialise the answer."""


def includeme(config):
    config.include(".launch")
    config.include(".instances")
    config.include(".health")
