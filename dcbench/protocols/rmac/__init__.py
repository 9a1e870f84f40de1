"""R-MAC instance retrieval pieces (Tolias et al. 2016) shared by the `retrieval` protocol."""
