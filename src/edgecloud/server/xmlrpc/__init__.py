"""OpenNebula's XML-RPC API (`POST /RPC2`): an adapter onto the same services as REST.

`core` holds the method registry, sessions, parameter checks and OpenNebula's return
convention; `xml` builds the documents (roots and fields as OpenNebula's XSDs say); one
module per family of methods registers its methods when imported (`methods()`).
"""
