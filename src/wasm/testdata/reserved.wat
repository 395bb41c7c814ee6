;; Exports a name in the runtime's reserved namespace.
(module (func (export "__nodata_fuel")))
